package tpm

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-tpm/tpm2"
)

// StatusInfo is what Device.Status reads from a TPM: who made it, its
// firmware, the SRK hsmenv uses, and its dictionary-attack state.
type StatusInfo struct {
	// Device is the device's canonical name (Device.Path).
	Device string
	// Manufacturer is TPM_PT_MANUFACTURER as its four ASCII characters,
	// trailing spaces and NULs dropped ("IBM", "IFX", "NTC", "STM",
	// "INTC", "AMD", "MSFT"); ManufacturerID is the raw value.
	Manufacturer   string
	ManufacturerID uint32
	// Vendor is TPM_PT_VENDOR_STRING_1..4, ASCII, trailing spaces and NULs
	// dropped (swtpm: "SW   TPM").
	Vendor string
	// FirmwareVersion1 and FirmwareVersion2 are TPM_PT_FIRMWARE_VERSION_1
	// and _2, whose meaning the vendor defines; FirmwareVersion formats
	// them.
	FirmwareVersion1, FirmwareVersion2 uint32
	// SRKName is the name of the SRK new objects go under, verified as
	// Device.SRKName verifies it (what srk= pins); SRKPersistent says it is
	// the persistent one at PersistentSRK rather than one made from the
	// template.
	SRKName       []byte
	SRKPersistent bool
	// LockoutCounter is TPM_PT_LOCKOUT_COUNTER, the failed authorizations
	// (wrong PINs) the TPM counts; at MaxTries (TPM_PT_MAX_AUTH_FAIL) it
	// is in lockout and refuses every PIN-protected object.
	LockoutCounter, MaxTries uint32
	// LockoutInterval is TPM_PT_LOCKOUT_INTERVAL in seconds: the TPM
	// forgets one failure each time it passes (0: it does not recover by
	// itself).
	LockoutInterval uint32
	// LockoutRecovery is TPM_PT_LOCKOUT_RECOVERY in seconds: how long the
	// lockout hierarchy refuses its authorization after a wrong one (0:
	// until the TPM restarts).
	LockoutRecovery uint32
	// InLockout is TPMA_PERMANENT's inLockout: PIN-protected objects are
	// refused until the counter drops below MaxTries or a reset.
	InLockout bool
	// LockoutAuthSet is TPMA_PERMANENT's lockoutAuthSet: the lockout
	// hierarchy has a non-empty authorization value (reset-lockout needs
	// it).
	LockoutAuthSet bool
}

// TPMA_PERMANENT bits (TPM 2.0 Part 2, 8.6).
const (
	permanentLockoutAuthSet = 1 << 2
	permanentInLockout      = 1 << 9
)

// FirmwareVersion formats the firmware version as four 16-bit parts, the
// halves of TPM_PT_FIRMWARE_VERSION_1 then of _2 (fwupd's and Windows'
// form, e.g. "7.85.4555.0").
func (s *StatusInfo) FirmwareVersion() string {
	return fmt.Sprintf("%d.%d.%d.%d", s.FirmwareVersion1>>16, s.FirmwareVersion1&0xffff, s.FirmwareVersion2>>16, s.FirmwareVersion2&0xffff)
}

// TriesLeft is how many more wrong PINs the TPM takes before lockout.
func (s *StatusInfo) TriesLeft() uint32 {
	if s.LockoutCounter >= s.MaxTries {
		return 0
	}
	return s.MaxTries - s.LockoutCounter
}

// Status reads the TPM's manufacturer, firmware version, SRK name (loading
// and verifying the SRK as every connection does) and dictionary-attack
// state. It sends no authorization, so it never counts towards lockout and
// works during one. ctx bounds the call.
func (d *Device) Status(ctx context.Context) (*StatusInfo, error) {
	var st *StatusInfo
	err := d.run(ctx, func(c *conn) error {
		fail := func(err error) error { return fmt.Errorf("%s: reading the TPM's status: %w", d.path, err) }
		fixed, err := properties(c.l, tpm2.TPMPTManufacturer, tpm2.TPMPTFirmwareVersion2)
		if err != nil {
			return fail(err)
		}
		da, err := readLockout(c.l)
		if err != nil {
			return fail(err)
		}
		perm, err := properties(c.l, tpm2.TPMPTPermanent, tpm2.TPMPTPermanent)
		if err != nil {
			return fail(err)
		}
		var vendor []byte
		for p := tpm2.TPMPTVendorString1; p <= tpm2.TPMPTVendorString4; p++ {
			vendor = append(vendor, fourChars(fixed[p])...)
		}
		st = &StatusInfo{
			Device:           d.path,
			Manufacturer:     ascii(fourChars(fixed[tpm2.TPMPTManufacturer])),
			ManufacturerID:   fixed[tpm2.TPMPTManufacturer],
			Vendor:           ascii(vendor),
			FirmwareVersion1: fixed[tpm2.TPMPTFirmwareVersion1],
			FirmwareVersion2: fixed[tpm2.TPMPTFirmwareVersion2],
			SRKName:          append([]byte(nil), c.srk.name.Buffer...),
			SRKPersistent:    c.srk.persistent,
			LockoutCounter:   da.counter,
			MaxTries:         da.maxTries,
			LockoutInterval:  da.interval,
			LockoutRecovery:  da.recovery,
			InLockout:        perm[tpm2.TPMPTPermanent]&permanentInLockout != 0,
			LockoutAuthSet:   perm[tpm2.TPMPTPermanent]&permanentLockoutAuthSet != 0,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// fourChars returns the four bytes of a property that holds ASCII text,
// first character in the most significant byte.
func fourChars(v uint32) []byte {
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// ascii returns b as text, trailing NULs and spaces dropped and any other
// byte outside printable ASCII shown as '?'.
func ascii(b []byte) string {
	out := []byte(strings.TrimRight(string(b), "\x00 "))
	for i, c := range out {
		if c < 0x20 || c > 0x7e {
			out[i] = '?'
		}
	}
	return string(out)
}
