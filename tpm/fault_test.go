package tpm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/tpm"
)

// TestPCRChanged: extending a PCR after sealing makes unwrapping fail with
// ErrPCR, naming that PCR and no other; resetting it makes it work again.
func TestPCRChanged(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	keks := map[string]envelope.KEK{
		"seal": open(t, "tpm:seal;pcrs=sha256:0,16,23?device="+d.Path()),
		"rsa":  open(t, keygen(t, dir, "rsa", tpm.KeyRSA2048, ";pcrs=sha256:16", d.Path(), "")),
		"ecc":  open(t, keygen(t, dir, "ecc", tpm.KeyECCP256, ";pcrs=sha256:7,16", d.Path(), "")),
	}
	type sealed struct{ pt, msg []byte }
	msgs := map[string]sealed{}
	for name, kek := range keks {
		pt, msg := encrypt(t, kek)
		msgs[name] = sealed{pt, msg}
	}
	before := handles(t, d)
	if err := d.ExtendPCR(ctx, 16, []byte("a kernel update")); err != nil {
		t.Fatal(err)
	}
	for name, kek := range keks {
		err := decrypt(t, msgs[name].pt, msgs[name].msg, kek)
		if !errors.Is(err, tpm.ErrPCR) || !strings.Contains(err.Error(), "PCR 16 ") {
			t.Fatalf("%s after extending PCR 16: %v", name, err)
		}
		for _, other := range []string{"PCR 0 ", "PCR 7 ", "PCR 23 "} {
			if strings.Contains(err.Error(), other) {
				t.Fatalf("%s: the error names %s, which did not change: %v", name, other, err)
			}
		}
		t.Logf("%s: %v", name, err)
	}
	if after := handles(t, d); after != before {
		t.Fatalf("handles before %+v, after %+v", before, after)
	}
	// New seals bind the new value; the old ones open again after a reset.
	roundTrip(t, keks["seal"])
	if err := d.ResetPCR(ctx, 16); err != nil {
		t.Fatal(err)
	}
	for name, kek := range keks {
		if err := decrypt(t, msgs[name].pt, msgs[name].msg, kek); err != nil {
			t.Fatalf("%s after resetting PCR 16: %v", name, err)
		}
	}
}

// TestWrongPIN: a wrong PIN gives ErrPIN with a clear message; after the
// TPM's limit it is in lockout (ErrLockout, saying how long and how to
// clear it), while objects without a PIN (noDA) keep working; ResetLockout
// ends it.
func TestWrongPIN(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	good := "&pin-value=right"
	seal := open(t, "tpm:seal;pin=yes?device="+d.Path()+good)
	eccURI := keygen(t, dir, "ecc", tpm.KeyECCP256, ";pin=yes", d.Path(), good)
	ecc := open(t, eccURI)
	nopin := open(t, "tpm:seal?device="+d.Path())
	pt, msg := encrypt(t, seal, ecc)
	badSeal := "tpm:seal?device=" + d.Path() + pinFile(t, "wrong")
	badECC := strings.Replace(eccURI, good, "&pin-value=wrong", 1)
	before := handles(t, d)

	var err error
	locked := false
	for i := 0; i < 10 && !locked; i++ {
		// A KEK never sends a PIN the TPM rejected again (see
		// TestRejectedPINNotRetried): each try is a new KEK, as a new
		// process would open.
		bad := open(t, badSeal)
		if i%2 == 1 {
			bad = open(t, badECC)
		}
		err = decrypt(t, pt, msg, bad)
		switch {
		case errors.Is(err, tpm.ErrLockout):
			locked = true
		case !errors.Is(err, tpm.ErrPIN) || !strings.Contains(err.Error(), "wrong PIN"):
			t.Fatalf("attempt %d with a wrong PIN: %v", i+1, err)
		}
		if i == 0 {
			t.Logf("wrong PIN: %v", err)
		}
	}
	if !locked {
		t.Fatal("no lockout after 10 wrong PINs")
	}
	t.Logf("lockout: %v", err)
	for _, want := range []string{"3 wrong PINs (limit 3)", "1000 s", "hsmenv tpm reset-lockout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the lockout error does not say %q", want)
		}
	}
	if strings.Contains(err.Error(), "tpm.Device") {
		t.Errorf("the lockout error names a Go API: %v", err)
	}
	// The right PIN is refused too while locked out; noDA objects work.
	if err := decrypt(t, pt, msg, seal); !errors.Is(err, tpm.ErrLockout) {
		t.Fatalf("right PIN during lockout: %v", err)
	}
	roundTrip(t, nopin)
	if err := d.ResetLockout(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := decrypt(t, pt, msg, seal); err != nil {
		t.Fatalf("seal after ResetLockout: %v", err)
	}
	if err := decrypt(t, pt, msg, ecc); err != nil {
		t.Fatalf("ECC after ResetLockout: %v", err)
	}
	if after := handles(t, d); after != before {
		t.Fatalf("handles before %+v, after %+v", before, after)
	}
	// The PIN from the caller's callback.
	if err := decrypt(t, pt, msg, open(t, "tpm:seal?device="+d.Path(), tpm.WithPIN(answer("right")))); err != nil {
		t.Fatalf("PIN from the callback: %v", err)
	}
}

// TestDifferentTPM: what one TPM sealed or created, another (a fresh swtpm
// state, as after a TPM clear) refuses with ErrDifferentTPM.
func TestDifferentTPM(t *testing.T) {
	_, a := startTPM(t)
	_, b := startTPM(t)
	dir := t.TempDir()
	keyA := keygen(t, dir, "k", tpm.KeyECCP256, "", a.Path(), "")
	for name, pair := range map[string][2]string{
		"seal": {"tpm:seal?device=" + a.Path(), "tpm:seal?device=" + b.Path()},
		"ecc":  {keyA, strings.Replace(keyA, a.Path(), b.Path(), 1)},
	} {
		pt, msg := encrypt(t, open(t, pair[0]))
		err := decrypt(t, pt, msg, open(t, pair[1]))
		if !errors.Is(err, tpm.ErrDifferentTPM) || !strings.Contains(err.Error(), "another TPM, or this one was cleared") {
			t.Fatalf("%s on another TPM: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
}

// TestKilledAndRestarted: swtpm killed in the middle of a run of unwraps
// gives ErrDevice, promptly; restarted on the same state, the same KEKs work
// again without being reopened.
func TestKilledAndRestarted(t *testing.T) {
	sw, d := startTPM(t)
	dir := t.TempDir()
	keks := []envelope.KEK{
		open(t, "tpm:seal;pcrs=0?device="+d.Path()),
		open(t, keygen(t, dir, "ecc", tpm.KeyECCP256, "", d.Path(), "")),
	}
	pt, msg := encrypt(t, keks...)
	errc := make(chan error, 1)
	go func() {
		for {
			for _, k := range keks {
				if err := decrypt(t, pt, msg, k); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	sw.Kill()
	select {
	case err := <-errc:
		if !errors.Is(err, tpm.ErrDevice) || !strings.Contains(err.Error(), d.Path()) {
			t.Fatalf("swtpm killed: %v", err)
		}
		t.Logf("killed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no error 10 s after swtpm was killed")
	}
	if err := unwrapOnce(keks[0]); !errors.Is(err, tpm.ErrDevice) {
		t.Fatalf("while down: %v", err)
	}
	sw.Restart()
	for _, k := range keks {
		if err := decrypt(t, pt, msg, k); err != nil {
			t.Fatalf("%s after restart: %v", k, err)
		}
	}
	// A restart between two calls (a stale connection) is invisible.
	sw.Restart()
	for _, k := range keks {
		if err := decrypt(t, pt, msg, k); err != nil {
			t.Fatalf("%s after a second restart: %v", k, err)
		}
	}
	if hc := handles(t, d); hc.Transient != 1 || hc.Sessions != 0 {
		t.Fatalf("handles after restarts: %+v", hc)
	}
}

// TestLeftoversFlushed: a process that died with objects and sessions
// loaded leaves them in swtpm (no resource manager); the next connection
// flushes them.
func TestLeftoversFlushed(t *testing.T) {
	_, d := startTPM(t)
	err := d.Do(ctx, func(tp transport.TPM, srk tpm.SRK) error {
		rsp, err := (tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
		}).Execute(tp)
		if err != nil {
			return err
		}
		_ = rsp // left loaded on purpose
		if _, _, err = tpm2.HMACSession(tp, tpm2.TPMAlgSHA256, 16); err != nil {
			return err
		}
		_, _, err = tpm2.PolicySession(tp, tpm2.TPMAlgSHA256, 16)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if hc := handles(t, d); hc.Transient != 2 || hc.Sessions != 2 {
		t.Fatalf("before: %+v", hc)
	}
	// Close flushes only the SRK it made: the object and sessions made
	// through Do stay in swtpm, as a crashed process's would. The next
	// connection flushes them.
	d.Close()
	if hc := handles(t, d); hc.Transient != 1 || hc.Sessions != 0 {
		t.Fatalf("after reconnecting: %+v", hc)
	}
}

// TestPersistentSRK: a persistent SRK at 0x81000001 that fits the template
// is used for new objects; what was made under the template SRK before
// still opens.
func TestPersistentSRK(t *testing.T) {
	_, d := startTPM(t)
	old := open(t, "tpm:seal?device="+d.Path())
	pt, msg := encrypt(t, old)
	before, _ := d.SRKName(ctx)
	provisionSRK(t, d)
	after, err := d.SRKName(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) == string(before) {
		t.Fatal("the persistent SRK is not used")
	}
	kek := open(t, "tpm:seal?device="+d.Path())
	if err := decrypt(t, pt, msg, kek); err != nil {
		t.Fatalf("old EDK under the template SRK: %v", err)
	}
	roundTrip(t, kek)
	roundTrip(t, open(t, "tpm:seal;pcrs=0;pin=yes?device="+d.Path()+"&pin-value=abc"))
	roundTrip(t, open(t, "tpm:seal;pin=yes?device="+d.Path()+"&pin-value=abc"))
	if hc := handles(t, d); hc.Transient != 1 || hc.Sessions != 0 {
		t.Fatalf("handles: %+v (the template SRK stays loaded once needed)", hc)
	}
}

// TestTamperedEDKs: altered EDKs fail cleanly (ErrUnwrap), never panic.
func TestTamperedEDKs(t *testing.T) {
	_, d := startTPM(t)
	kek := open(t, "tpm:seal;pcrs=16?device="+d.Path())
	edk, err := kek.Wrap(ctx, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i%len(c)] ^= 1
		return c
	}
	for i := 0; i < len(edk.ProviderInfo); i++ {
		bad := edk
		bad.ProviderInfo = flip(edk.ProviderInfo, i)
		if _, err := kek.Unwrap(ctx, bad, nil); err == nil {
			t.Fatalf("provider info byte %d altered: no error", i)
		}
	}
	for i := 0; i < len(edk.Ciphertext); i += 7 {
		bad := edk
		bad.Ciphertext = flip(edk.Ciphertext, i)
		if _, err := kek.Unwrap(ctx, bad, nil); err == nil {
			t.Fatalf("ciphertext byte %d altered: no error", i)
		} else if !errors.Is(err, tpm.ErrUnwrap) && !errors.Is(err, tpm.ErrPCR) {
			t.Fatalf("ciphertext byte %d altered: %v", i, err)
		}
	}
	for _, n := range []int{0, 1, 5, len(edk.Ciphertext) - 1} {
		bad := edk
		bad.Ciphertext = edk.Ciphertext[:n]
		if _, err := kek.Unwrap(ctx, bad, nil); !errors.Is(err, tpm.ErrUnwrap) {
			t.Fatalf("ciphertext cut to %d: %v", n, err)
		}
	}
	if hc := handles(t, d); hc.Transient != 1 || hc.Sessions != 0 {
		t.Fatalf("handles: %+v", hc)
	}
}

// TestCancelled: a cancelled context stops a call at once and the device
// works afterwards.
func TestCancelled(t *testing.T) {
	_, d := startTPM(t)
	kek := open(t, "tpm:seal?device="+d.Path())
	edk, err := kek.Wrap(ctx, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := kek.Unwrap(cctx, edk, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := kek.Unwrap(ctx, edk, nil); err != nil {
		t.Fatal(err)
	}
	// A deadline that passes while the TPM works (RSA key generation takes
	// swtpm tens of milliseconds or more) interrupts the call; the
	// connection is dropped and the next call gets a new one.
	tctx, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
	defer cancel()
	_, err = tpm.Generate(tctx, "tpm:key-file="+t.TempDir()+"/k.tpmkey?device="+d.Path(), tpm.KeyRSA2048)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline during keygen: %v", err)
	}
	if _, err := kek.Unwrap(ctx, edk, nil); err != nil {
		t.Fatalf("after an interrupted call: %v", err)
	}
	if hc := handles(t, d); hc.Transient != 1 || hc.Sessions != 0 {
		t.Fatalf("handles: %+v", hc)
	}
}
