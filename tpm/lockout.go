package tpm

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// lockoutInfo is the dictionary-attack state of a TPM.
type lockoutInfo struct {
	counter, maxTries, interval, recovery uint32
}

// lockoutError builds the ErrLockout error for what, from the TPM's
// dictionary-attack properties (info may be nil if they could not be read).
func lockoutError(what string, info *lockoutInfo) error {
	const howToClear = "the lockout hierarchy's owner can end it now with `tpm2_dictionarylockout --clear-lockout` (hsmenv: tpm.Device.ResetLockout), using the lockout authorization"
	if info == nil {
		return fmt.Errorf("%w: %s: too many wrong PINs; the TPM refuses PIN-protected objects until its lockout interval has passed; %s", ErrLockout, what, howToClear)
	}
	wait := fmt.Sprintf("the TPM forgets one failure every %d s (TPM_PT_LOCKOUT_INTERVAL), so it accepts PINs again within %d s", info.interval, info.interval)
	if info.interval == 0 {
		wait = "its lockout interval is 0: it does not recover by itself"
	}
	return fmt.Errorf("%w: %s: %d failed authorizations (limit %d); %s; after a failed lockout authorization it waits %d s (TPM_PT_LOCKOUT_RECOVERY); %s",
		ErrLockout, what, info.counter, info.maxTries, wait, info.recovery, howToClear)
}

// lockout reads the dictionary-attack properties; nil if they cannot be
// read.
func lockout(t transport.TPM) *lockoutInfo {
	rsp, err := (tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 4}).Execute(t)
	if err != nil {
		return nil
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return nil
	}
	var info lockoutInfo
	for _, p := range props.TPMProperty {
		switch p.Property {
		case tpm2.TPMPTLockoutCounter:
			info.counter = p.Value
		case tpm2.TPMPTMaxAuthFail:
			info.maxTries = p.Value
		case tpm2.TPMPTLockoutInterval:
			info.interval = p.Value
		case tpm2.TPMPTLockoutRecovery:
			info.recovery = p.Value
		}
	}
	return &info
}

// ResetLockout ends a dictionary-attack lockout and zeroes the failure
// counter (TPM2_DictionaryAttackLockReset), authorized by the lockout
// hierarchy's authorization value (empty on a fresh TPM or swtpm). A wrong
// value counts as a lockout failure itself. ctx bounds the TPM call.
func (d *Device) ResetLockout(ctx context.Context, lockoutAuth []byte) error {
	err := d.run(ctx, func(c *conn) error {
		// go-tpm v0.9.8 has no type for this command: it is small enough
		// to marshal here (password session on TPM_RH_LOCKOUT).
		cmd := binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMSTSessions))
		cmd = binary.BigEndian.AppendUint32(cmd, 0) // size, set below
		cmd = binary.BigEndian.AppendUint32(cmd, uint32(tpm2.TPMCCDictionaryAttackLockReset))
		cmd = binary.BigEndian.AppendUint32(cmd, uint32(tpm2.TPMRHLockout))
		auth := binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMRSPW))
		auth = binary.BigEndian.AppendUint16(auth, 0) // nonce
		auth = append(auth, 1)                        // continueSession
		auth = binary.BigEndian.AppendUint16(auth, uint16(len(lockoutAuth)))
		auth = append(auth, lockoutAuth...)
		cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(auth)))
		cmd = append(cmd, auth...)
		binary.BigEndian.PutUint32(cmd[2:], uint32(len(cmd)))
		rsp, err := c.l.Send(cmd)
		if err != nil {
			return err
		}
		if len(rsp) < headerLen {
			return &linkError{fmt.Errorf("a %d-byte response", len(rsp))}
		}
		if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
			return rc
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case isAuthFail(err):
		return fmt.Errorf("%w: %s: the lockout authorization is wrong: %v", ErrPIN, d.path, err)
	case isRC(err, tpm2.TPMRCLockout):
		return fmt.Errorf("%w: %s: the lockout authorization itself is locked out for TPM_PT_LOCKOUT_RECOVERY seconds", ErrLockout, d.path)
	}
	return fmt.Errorf("%s: TPM2_DictionaryAttackLockReset: %w", d.path, err)
}
