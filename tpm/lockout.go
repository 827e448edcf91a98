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

// lockoutError builds the ErrLockout error from the TPM's
// dictionary-attack properties (info may be nil if they could not be read).
func lockoutError(info *lockoutInfo) error {
	switch {
	case info == nil:
		return fmt.Errorf("%w: too many wrong PINs; PINs work again after the TPM's lockout interval, or after hsmenv tpm reset-lockout", ErrLockout)
	case info.interval == 0: // the TPM does not recover by itself
		return fmt.Errorf("%w: %d wrong PINs (limit %d); PINs work again only after hsmenv tpm reset-lockout", ErrLockout, info.counter, info.maxTries)
	}
	return fmt.Errorf("%w: %d wrong PINs (limit %d); PINs work again within %d s, or after hsmenv tpm reset-lockout", ErrLockout, info.counter, info.maxTries, info.interval)
}

// lockout reads the dictionary-attack properties; nil if they cannot be
// read.
func lockout(t transport.TPM) *lockoutInfo {
	info, err := readLockout(t)
	if err != nil {
		return nil
	}
	return info
}

// readLockout reads the dictionary-attack properties.
func readLockout(t transport.TPM) (*lockoutInfo, error) {
	props, err := properties(t, tpm2.TPMPTLockoutCounter, tpm2.TPMPTLockoutRecovery)
	if err != nil {
		return nil, err
	}
	return &lockoutInfo{
		counter:  props[tpm2.TPMPTLockoutCounter],
		maxTries: props[tpm2.TPMPTMaxAuthFail],
		interval: props[tpm2.TPMPTLockoutInterval],
		recovery: props[tpm2.TPMPTLockoutRecovery],
	}, nil
}

// properties reads the TPM properties first..last (TPM2_GetCapability of
// TPM_CAP_TPM_PROPERTIES, as many calls as the TPM needs). A property the
// TPM does not report is absent from the map.
func properties(t transport.TPM, first, last tpm2.TPMPT) (map[tpm2.TPMPT]uint32, error) {
	out := map[tpm2.TPMPT]uint32{}
	for next := first; next <= last; {
		rsp, err := (tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(next), PropertyCount: uint32(last-next) + 1}).Execute(t)
		if err != nil {
			return nil, fmt.Errorf("TPM2_GetCapability(TPM properties %#x..%#x): %w", uint32(next), uint32(last), err)
		}
		props, err := rsp.CapabilityData.Data.TPMProperties()
		if err != nil {
			return nil, err
		}
		from := next
		for _, p := range props.TPMProperty {
			if p.Property >= first && p.Property <= last {
				out[p.Property] = p.Value
			}
			if p.Property >= next {
				next = p.Property + 1
			}
		}
		if !rsp.MoreData || next == from {
			break
		}
	}
	return out, nil
}

// ResetLockout ends a dictionary-attack lockout and zeroes the failure
// counter (TPM2_DictionaryAttackLockReset), authorized by the lockout
// hierarchy's authorization value (empty on a fresh TPM or swtpm). A wrong
// value is ErrPIN, and locks the lockout hierarchy itself for
// TPM_PT_LOCKOUT_RECOVERY seconds (0: until the TPM restarts), during which
// every try is ErrLockout. ctx bounds the TPM call.
func (d *Device) ResetLockout(ctx context.Context, lockoutAuth []byte) error {
	var info *lockoutInfo // read after a failure, for the message
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
		clear(auth)
		clear(cmd)
		if err != nil {
			return err
		}
		if len(rsp) < headerLen {
			return &linkError{fmt.Errorf("a %d-byte response", len(rsp))}
		}
		if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
			info = lockout(c.l)
			return rc
		}
		return nil
	})
	recovery := "TPM_PT_LOCKOUT_RECOVERY"
	if info != nil && info.recovery == 0 {
		recovery += " is 0: until the TPM restarts"
	} else if info != nil {
		recovery = fmt.Sprintf("%d s, %s", info.recovery, recovery)
	}
	switch {
	case err == nil:
		return nil
	case isAuthFail(err):
		return fmt.Errorf("%w: %s: the TPM rejected the lockout authorization; the lockout hierarchy now refuses every authorization for a while (%s)", ErrPIN, d.path, recovery)
	case isRC(err, tpm2.TPMRCLockout):
		return fmt.Errorf("%w: %s: the lockout hierarchy refuses every authorization after a failed one, for a while (%s); wait, then reset with the right lockout authorization", ErrLockout, d.path, recovery)
	}
	return fmt.Errorf("%s: TPM2_DictionaryAttackLockReset: %w", d.path, err)
}
