package tpm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

var ctx = context.Background()

// startTPM starts a fresh swtpm and returns it with its Device, which is
// closed (before swtpm stops) when the test ends.
func startTPM(t testing.TB) (*tpmtest.SWTPM, *tpm.Device) {
	t.Helper()
	sw := tpmtest.Start(t)
	return sw, openDevice(t, sw.Device())
}

// openDevice opens the TPM at dev; the Device is closed when the test
// ends.
func openDevice(t testing.TB, dev string) *tpm.Device {
	t.Helper()
	d, err := tpm.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// open opens a KEK URI or fails the test.
func open(t testing.TB, uri string, opts ...tpm.Option) envelope.KEK {
	t.Helper()
	kek, err := tpm.OpenURI(ctx, uri, opts...)
	if err != nil {
		t.Fatalf("OpenURI %s: %v", uri, err)
	}
	return kek
}

// keygen generates a key file of type typ in dir and returns its URI
// (tpm:key-file=PATH + attrs ?device=... + query).
func keygen(t testing.TB, dir, name, typ, attrs, device, query string) string {
	t.Helper()
	uri := "tpm:key-file=" + filepath.Join(dir, name+".tpmkey") + attrs + "?device=" + device + query
	desc, err := tpm.Generate(ctx, uri, typ)
	if err != nil {
		t.Fatalf("Generate %s %s: %v", typ, uri, err)
	}
	t.Logf("%s", desc)
	return uri
}

// pinFile writes pin to a file and returns "&pin-source=file:PATH".
func pinFile(t testing.TB, pin string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(p, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "&pin-source=file:" + p
}

var testContext = envelope.EncryptionContext{"purpose": "tpm-test", "ключ": "値"}

// encrypt encrypts a random plaintext under every KEK.
func encrypt(t testing.TB, keks ...envelope.KEK) (pt, msg []byte) {
	t.Helper()
	kr := envelope.NewKeyring(keks...)
	pt = make([]byte, 10_000)
	rand.Read(pt)
	var err error
	msg, err = envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Context: testContext})
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	return pt, msg
}

// decrypt decrypts msg with the KEKs and checks the plaintext if it works.
func decrypt(t testing.TB, pt, msg []byte, keks ...envelope.KEK) error {
	t.Helper()
	kr := envelope.NewKeyring(keks...)
	got, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{RequiredContext: testContext})
	if err != nil {
		return err
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("decrypted plaintext differs")
	}
	return nil
}

// roundTrip encrypts under kek and decrypts with it.
func roundTrip(t testing.TB, kek envelope.KEK) {
	t.Helper()
	pt, msg := encrypt(t, kek)
	if err := decrypt(t, pt, msg, kek); err != nil {
		t.Fatalf("decrypt: %v", err)
	}
}

// unwrapOnce wraps a data key and unwraps it.
func unwrapOnce(kek envelope.KEK) error {
	dek := make([]byte, 32)
	rand.Read(dek)
	edk, err := kek.Wrap(ctx, dek, testContext)
	if err != nil {
		return err
	}
	got, err := kek.Unwrap(ctx, edk, testContext)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, dek) {
		return os.ErrInvalid
	}
	return nil
}

// handles reads the handle counts or fails the test.
func handles(t testing.TB, d *tpm.Device) tpm.HandleCounts {
	t.Helper()
	hc, err := d.Handles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// provisionSRK makes the template SRK persistent at 0x81000001, as
// tpm2_createprimary + tpm2_evictcontrol would.
func provisionSRK(t *testing.T, d *tpm.Device) {
	t.Helper()
	tmpl := tpm2.ECCSRKTemplate
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	err := d.Do(ctx, func(tp transport.TPM, _ tpm.SRK) error {
		rsp, err := (tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(tmpl),
		}).Execute(tp)
		if err != nil {
			return err
		}
		defer (tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}).Execute(tp)
		_, err = (tpm2.EvictControl{
			Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			ObjectHandle:     tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name},
			PersistentHandle: tpm.PersistentSRK,
		}).Execute(tp)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Close() // the next connection finds the persistent SRK
}
