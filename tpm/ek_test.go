package tpm_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/tpm"
)

// ekPEM exports the EK public key of d to a file in the test's directory.
func ekPEM(t *testing.T, d *tpm.Device, ecc bool) string {
	t.Helper()
	pem, err := d.EKPublicKeyPEM(ctx, ecc, false)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ek.pem")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Sealed to a device's EK from its public key alone (the device
// stopped), opened on the device; another TPM refuses with the EK message.
func TestEKRemoteSeal(t *testing.T) {
	for _, ecc := range []bool{false, true} {
		name := map[bool]string{false: "rsa", true: "ecc"}[ecc]
		t.Run(name, func(t *testing.T) {
			sw, d := startTPM(t)
			pemFile := ekPEM(t, d, ecc)
			d.Close()
			sw.Stop() // the encrypting side has no TPM
			remote := open(t, "tpm:ek="+pemFile)
			dek := make([]byte, 32)
			rand.Read(dek)
			edk, err := remote.Wrap(ctx, dek, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Unwrap(ctx, edk, nil); !errors.Is(err, tpm.ErrUnwrap) {
				t.Fatalf("the PEM-only KEK unwrapped: %v", err)
			}
			sw.Restart()
			device := open(t, "tpm:ek?device="+sw.Device())
			if !device.Claims(edk) || !remote.Claims(edk) {
				t.Fatal("an EK EDK not claimed")
			}
			got, err := device.Unwrap(ctx, edk, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, dek) {
				t.Fatal("unsealed another data key")
			}
			other, _ := startTPM(t)
			_, err = open(t, "tpm:ek?device="+other.Device()).Unwrap(ctx, edk, nil)
			if !errors.Is(err, tpm.ErrDifferentTPM) || !strings.Contains(err.Error(), "sealed to another TPM (EK name") {
				t.Fatalf("another TPM: %v", err)
			}
			// Altered: the duplicate, the seed.
			for _, off := range []int{len(edk.Ciphertext) / 2, len(edk.Ciphertext) - 5} {
				bad := edk
				bad.Ciphertext = bytes.Clone(edk.Ciphertext)
				bad.Ciphertext[off] ^= 1
				if got, err := device.Unwrap(ctx, bad, nil); err == nil || got != nil {
					t.Fatalf("altered at %d: %v", off, err)
				}
			}
		})
	}
}

// Bound to a literal PCR 16 value: opens while PCR 16 holds it; after an
// extend, refused naming PCR 16.
func TestEKPCRs(t *testing.T) {
	sw, d := startTPM(t)
	pemFile := ekPEM(t, d, false)
	vals, err := d.PCRValues(ctx, []int{16})
	if err != nil {
		t.Fatal(err)
	}
	valuesFile := filepath.Join(t.TempDir(), "pcrs.txt")
	os.WriteFile(valuesFile, []byte("sha256:\n  16: 0x"+strings.ToUpper(hex.EncodeToString(vals[0]))+"\n"), 0o644)
	dek := []byte("0123456789abcdef0123456789abcdef")
	for _, uri := range []string{
		"tpm:ek=" + pemFile + ";pcrs=sha256:16=" + hex.EncodeToString(vals[0]),
		"tpm:ek=" + pemFile + ";pcrs=sha256:16?pcr-values=" + valuesFile,
	} {
		edk, err := open(t, uri).Wrap(ctx, dek, nil)
		if err != nil {
			t.Fatal(err)
		}
		device := open(t, "tpm:ek?device="+sw.Device())
		if got, err := device.Unwrap(ctx, edk, nil); err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("%s: %v", uri, err)
		}
		if err := d.ExtendPCR(ctx, 16, []byte("update")); err != nil {
			t.Fatal(err)
		}
		_, err = device.Unwrap(ctx, edk, nil)
		if !errors.Is(err, tpm.ErrPCR) || !strings.Contains(err.Error(), "PCR 16") {
			t.Fatalf("PCR 16 extended: %v", err)
		}
		if err := d.ResetPCR(ctx, 16); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{
		"tpm:ek=" + pemFile + ";pcrs=sha256:16",           // no value
		"tpm:ek=" + pemFile + ";pcrs=sha256:16=abcd",      // short value
		"tpm:ek=" + pemFile + "?device=" + sw.Device(),    // the encrypting side has no device
		"tpm:ek;ca=" + pemFile + "?device=" + sw.Device(), // ca= is for the encrypting side
		"tpm:ek;seal",
	} {
		if _, err := tpm.OpenURI(ctx, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
