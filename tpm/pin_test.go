package tpm_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// lockoutCounter reads TPM_PT_LOCKOUT_COUNTER, the TPM's count of failed
// authorizations.
func lockoutCounter(t *testing.T, d *tpm.Device) uint32 {
	t.Helper()
	var n uint32
	err := d.Do(ctx, func(tp transport.TPM, _ tpm.SRK) error {
		var err error
		n, err = tpmtest.LockoutCounter(tp)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRejectedPINNotRetried: a message with five PIN-protected EDKs for one
// KEK, opened with a wrong PIN from each source (pin-value, pin-source, a
// callback that gives the same answer each time), costs one failed
// authorization, not five (three put swtpm in lockout): once the TPM
// rejects a PIN, the KEK never sends it again. The same holds for repeated
// Unwrap calls on an RSA key file with a PIN.
func TestRejectedPINNotRetried(t *testing.T) {
	_, d := startTPM(t)
	dev := d.Path()
	good := "&pin-value=right"
	keks := make([]envelope.KEK, 5)
	for i := range keks {
		keks[i] = open(t, "tpm:seal;pin=yes?device="+dev+good)
	}
	pt, msg := encrypt(t, keks...)
	h, err := envelope.ParseHeader(strings.NewReader(string(msg)))
	if err != nil || len(h.EDKs) != 5 {
		t.Fatalf("%d EDKs, %v", len(h.EDKs), err)
	}
	keyURI := keygen(t, t.TempDir(), "rsa", tpm.KeyRSA2048, ";pin=yes", dev, good)
	rsaEDK := wrapWith(t, open(t, keyURI), randomKey(32))

	cases := []struct {
		name, uri string
		opts      []tpm.Option
	}{
		{"pin-value", "tpm:seal?device=" + dev + "&pin-value=wrong", nil},
		{"pin-source", "tpm:seal?device=" + dev + pinFile(t, "wrong"), nil},
		{"callback", "tpm:seal?device=" + dev, []tpm.Option{tpm.WithPIN(answer("wrong"))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := lockoutCounter(t, d)
			err := decrypt(t, pt, msg, open(t, c.uri, c.opts...))
			after := lockoutCounter(t, d)
			if after > before+1 {
				t.Errorf("one decryption with a wrong PIN took the lockout counter from %d to %d", before, after)
			}
			if !errors.Is(err, tpm.ErrPIN) || errors.Is(err, tpm.ErrLockout) || strings.Contains(err.Error(), "\n") ||
				strings.Count(err.Error(), "the TPM rejected the PIN") != 1 {
				t.Errorf("decrypt with a wrong PIN: %v", err)
			}
			t.Logf("counter %d -> %d: %v", before, after, err)
			if err := d.ResetLockout(ctx, nil); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("key-file", func(t *testing.T) {
		kek := open(t, strings.Replace(keyURI, good, "&pin-value=wrong", 1))
		before := lockoutCounter(t, d)
		for i := 0; i < 5; i++ {
			if _, err := kek.Unwrap(ctx, rsaEDK, nil); !errors.Is(err, tpm.ErrPIN) {
				t.Fatalf("unwrap %d with a wrong PIN: %v", i+1, err)
			} else if i == 1 {
				t.Logf("second try: %v", err)
			}
		}
		if after := lockoutCounter(t, d); after > before+1 {
			t.Errorf("five unwraps with a wrong PIN took the lockout counter from %d to %d", before, after)
		}
	})

	// The right PIN still works, and a KEK that was given a wrong PIN does
	// not poison another KEK.
	if err := decrypt(t, pt, msg, open(t, "tpm:seal?device="+dev+good)); err != nil {
		t.Fatalf("right PIN: %v", err)
	}
}
