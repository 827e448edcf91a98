package tpm_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/tpm"
)

// authority makes an ECDSA P-256 authority key and writes its public key
// to a PEM file, which it returns with the key.
func authority(t *testing.T, dir, name string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	path := filepath.Join(dir, name+".pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return k, path
}

// signPCR16 signs PCR 16's current value into dir/name.json.
func signPCR16(t *testing.T, d *tpm.Device, k *ecdsa.PrivateKey, dir, name string) {
	t.Helper()
	v, err := d.PCRValues(ctx, []int{16})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tpm.SignPCRs(k, []int{16}, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Sealed to an authority's signed PCR values: opens with a signed set that
// matches; after PCR 16 changes, refused until the authority signs the new
// value (nothing sealed again); a set signed by another key is refused.
func TestSignedPCRPolicy(t *testing.T) {
	sw, d := startTPM(t)
	dir := t.TempDir()
	signed := filepath.Join(dir, "signed")
	os.Mkdir(signed, 0o755)
	authKey, authPub := authority(t, dir, "authority")
	otherKey, _ := authority(t, dir, "other")
	ekPEM := ekPEM(t, d, false)
	for _, c := range []struct{ name, seal, open string }{
		{"seal", "tpm:seal;authority=" + authPub + "?device=" + sw.Device(), "tpm:seal?device=" + sw.Device() + "&signed-pcrs=" + signed},
		{"ek", "tpm:ek=" + ekPEM + ";authority=" + authPub, "tpm:ek?device=" + sw.Device() + "&signed-pcrs=" + signed},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range []string{"boot-1", "boot-2", "other"} {
				os.Remove(filepath.Join(signed, f+".json"))
			}
			if err := d.ResetPCR(ctx, 16); err != nil {
				t.Fatal(err)
			}
			dek := []byte("0123456789abcdef0123456789abcdef")
			edk, err := open(t, c.seal).Wrap(ctx, dek, nil)
			if err != nil {
				t.Fatal(err)
			}
			signPCR16(t, d, authKey, signed, "boot-1")
			if got, err := open(t, c.open).Unwrap(ctx, edk, nil); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("with the signed value: %v", err)
			}
			if err := d.ExtendPCR(ctx, 16, []byte("kernel update")); err != nil {
				t.Fatal(err)
			}
			_, err = open(t, c.open).Unwrap(ctx, edk, nil)
			if !errors.Is(err, tpm.ErrPCR) || !strings.Contains(err.Error(), "PCR 16") {
				t.Fatalf("after the update, before signing: %v", err)
			}
			signPCR16(t, d, otherKey, signed, "other")
			_, err = open(t, c.open).Unwrap(ctx, edk, nil)
			if !errors.Is(err, tpm.ErrPCR) {
				t.Fatalf("the new value signed by another key: %v", err)
			}
			signPCR16(t, d, authKey, signed, "boot-2")
			if got, err := open(t, c.open).Unwrap(ctx, edk, nil); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("after the authority signed the new value: %v", err)
			}
			// Without the signed sets, the error says what to give.
			_, err = open(t, strings.Split(c.open, "&signed-pcrs")[0]).Unwrap(ctx, edk, nil)
			if !errors.Is(err, tpm.ErrPCR) || !strings.Contains(err.Error(), "signed-pcrs") {
				t.Fatalf("no signed-pcrs: %v", err)
			}
		})
	}
	// A signed file altered (its values changed without a new signature)
	// is refused when read.
	b, _ := os.ReadFile(filepath.Join(signed, "boot-2.json"))
	forged := filepath.Join(dir, "forged.json")
	os.WriteFile(forged, bytes.Replace(b, []byte(`"approved_policy": "`), []byte(`"approved_policy": "00`), 1), 0o644)
	if _, err := tpm.OpenURI(ctx, "tpm:seal?device="+sw.Device()+"&signed-pcrs="+forged); !errors.Is(err, tpm.ErrSignedPolicy) {
		t.Fatalf("forged file: %v", err)
	}
	if _, err := tpm.OpenURI(ctx, "tpm:seal;pcrs=sha256:16;authority="+authPub+"?device="+sw.Device()); err == nil {
		t.Fatal("authority= with pcrs= accepted")
	}
}
