package tpm_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/tpm"
)

// status reads the TPM's status or fails the test.
func status(t *testing.T, d *tpm.Device) *tpm.StatusInfo {
	t.Helper()
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// Status on a fresh swtpm: who made it, the SRK as SRKName gives it, and
// swtpm's dictionary-attack defaults.
func TestStatus(t *testing.T) {
	_, d := startTPM(t)
	st := status(t, d)
	srk, err := d.SRKName(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v, firmware %s", *st, st.FirmwareVersion())
	switch {
	case st.Device != d.Path():
		t.Errorf("Device %q, want %q", st.Device, d.Path())
	case st.Manufacturer != "IBM" || st.ManufacturerID != 0x49424d00: // libtpms: "IBM\0"
		t.Errorf("manufacturer %q (%#x)", st.Manufacturer, st.ManufacturerID)
	case st.Vendor == "" || st.FirmwareVersion1 == 0:
		t.Errorf("vendor %q, firmware %#x", st.Vendor, st.FirmwareVersion1)
	case !bytes.Equal(st.SRKName, srk) || st.SRKPersistent:
		t.Errorf("SRK %x (persistent %v), want the template SRK %x", st.SRKName, st.SRKPersistent, srk)
	case st.LockoutCounter != 0 || st.MaxTries != 3 || st.TriesLeft() != 3 || st.LockoutInterval != 1000 || st.LockoutRecovery != 1000:
		t.Errorf("dictionary-attack state %+v, want swtpm's defaults (0 of 3, 1000 s, 1000 s)", *st)
	case st.InLockout || st.LockoutAuthSet:
		t.Errorf("in lockout %v, lockout auth set %v", st.InLockout, st.LockoutAuthSet)
	}
	if v, want := (&tpm.StatusInfo{FirmwareVersion1: 0x00070055, FirmwareVersion2: 0x11cb0000}).FirmwareVersion(), "7.85.4555.0"; v != want {
		t.Errorf("FirmwareVersion %q, want %q", v, want)
	}
}

// The lockout counter in Status: each wrong PIN adds one, the third puts
// the TPM in lockout (Status still works then: it sends no
// authorization), and ResetLockout zeroes it. Then with a lockout
// authorization set: a wrong one is ErrPIN and locks the lockout
// hierarchy itself for TPM_PT_LOCKOUT_RECOVERY, so that even the right one
// is refused with ErrLockout.
func TestStatusLockout(t *testing.T) {
	_, d := startTPM(t)
	seal := "tpm:seal;pin=yes?device=" + d.Path()
	pt, msg := encrypt(t, open(t, seal+"&pin-value=right"))
	for i := uint32(1); i <= 3; i++ {
		// A new KEK each time: one never sends a rejected PIN again.
		err := decrypt(t, pt, msg, open(t, seal+"&pin-value=wrong"))
		if !errors.Is(err, tpm.ErrPIN) && !(i == 3 && errors.Is(err, tpm.ErrLockout)) {
			t.Fatalf("wrong PIN %d: %v", i, err)
		}
		st := status(t, d)
		if st.LockoutCounter != i || st.TriesLeft() != 3-i || st.InLockout != (i == 3) {
			t.Fatalf("after %d wrong PINs: counter %d, %d tries left, in lockout %v", i, st.LockoutCounter, st.TriesLeft(), st.InLockout)
		}
	}
	if err := decrypt(t, pt, msg, open(t, seal+"&pin-value=right")); !errors.Is(err, tpm.ErrLockout) {
		t.Fatalf("right PIN in lockout: %v", err)
	}
	if err := d.ResetLockout(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := status(t, d); st.LockoutCounter != 0 || st.InLockout {
		t.Fatalf("after ResetLockout: counter %d, in lockout %v", st.LockoutCounter, st.InLockout)
	}
	if err := decrypt(t, pt, msg, open(t, seal+"&pin-value=right")); err != nil {
		t.Fatalf("right PIN after ResetLockout: %v", err)
	}

	// A lockout authorization, as tpm2_changeauth -c lockout sets it.
	auth := []byte("lockout secret")
	err := d.Do(ctx, func(tp transport.TPM, _ tpm.SRK) error {
		_, err := (tpm2.HierarchyChangeAuth{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)},
			NewAuth:    tpm2.TPM2BAuth{Buffer: auth},
		}).Execute(tp)
		return err
	})
	if err != nil {
		t.Fatalf("TPM2_HierarchyChangeAuth(lockout): %v", err)
	}
	if !status(t, d).LockoutAuthSet {
		t.Fatal("lockoutAuthSet not reported")
	}
	decrypt(t, pt, msg, open(t, seal+"&pin-value=wrong"))
	if err := d.ResetLockout(ctx, auth); err != nil {
		t.Fatalf("ResetLockout with the lockout authorization: %v", err)
	}
	if n := status(t, d).LockoutCounter; n != 0 {
		t.Fatalf("counter %d after ResetLockout", n)
	}
	err = d.ResetLockout(ctx, []byte("wrong"))
	t.Logf("wrong lockout authorization: %v", err)
	if !errors.Is(err, tpm.ErrPIN) || !strings.Contains(err.Error(), "rejected the lockout authorization") || !strings.Contains(err.Error(), "1000 s, TPM_PT_LOCKOUT_RECOVERY") {
		t.Fatalf("wrong lockout authorization: %v", err)
	}
	err = d.ResetLockout(ctx, auth)
	t.Logf("right lockout authorization within TPM_PT_LOCKOUT_RECOVERY: %v", err)
	if !errors.Is(err, tpm.ErrLockout) || !strings.Contains(err.Error(), "TPM_PT_LOCKOUT_RECOVERY") {
		t.Fatalf("right lockout authorization right after a wrong one: %v", err)
	}
	// The wrong lockout authorization did not count against PINs.
	if st := status(t, d); st.LockoutCounter != 0 || st.InLockout {
		t.Fatalf("after a wrong lockout authorization: counter %d, in lockout %v", st.LockoutCounter, st.InLockout)
	}
}
