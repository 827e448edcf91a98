package interop_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/kektemplate"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// An AES key imported into SoftHSM2 from known bytes: hsmenv wraps through
// PKCS#11 (AES-GCM inside the token), and the JS ESDK's raw AES keyring
// holding the same bytes (namespace "hsmenv", name = the object label) opens
// the message — and the other way round.
func TestSoftHSMAESWithJSRawAES(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "aes.key")
	os.WriteFile(keyFile, key, 0o600)
	uri := tok.URI("restored-kek")
	tok.ImportAESKey(t, "restored-kek", key, kektemplate.AESEncrypt)
	kek, err := hsm.OpenURI(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if kek.Mechanism() != hsm.MechAESGCM {
		t.Fatalf("mechanism %s", kek.Mechanism())
	}
	kr := envelope.NewKeyring(kek)
	jsKeyring := map[string]any{"type": "raw-aes", "namespace": hsm.DefaultNamespace, "name": "restored-kek", "keyFile": keyFile, "utf8Sorting": true}
	ec := envelope.EncryptionContext{"purpose": "hsm-interop", "ключ": "値"}
	for _, suite := range suites {
		pt := randBytes(70_000)
		msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Suite: suite, Context: ec, FrameSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		got, res, err := runJS(t, "decrypt", jsSpec{Keyrings: []map[string]any{jsKeyring}, Context: ec}, msg)
		if err != nil {
			t.Fatalf("JS could not open hsmenv's PKCS#11 AES-GCM EDK: %v", err)
		}
		if !bytes.Equal(got, pt) || res.Suite != suite.String() {
			t.Fatalf("JS decrypt: %d bytes, suite %s", len(got), res.Suite)
		}
		// JS encrypts with the raw key; the token opens it.
		jsMsg, _, err := runJS(t, "encrypt", jsSpec{Keyrings: []map[string]any{jsKeyring}, Suite: suite.String(), Context: ec}, pt)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err = envelope.Decrypt(ctx, jsMsg, kr, envelope.DecryptOptions{RequiredContext: ec})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("hsmenv through SoftHSM2 could not open JS's raw AES message: %v", err)
		}
	}
}

// The JS ESDK's raw RSA keyring with the public key exported from the token
// (hsmenv pubkey) encrypts; hsmenv decrypts through the token. SoftHSM2
// decrypts OAEP with SHA-1 only, so that is the padding.
func TestJSRawRSAToSoftHSM(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	tok := softhsmtest.New(t, softhsmtest.Options{})
	const padding = "oaep-sha1"
	uri := tok.URI("rsa-kek", "x-padding="+padding)
	if _, err := hsm.Generate(ctx, uri, hsm.KeyRSA3072); err != nil {
		t.Fatal(err)
	}
	pem, err := hsm.PublicKeyPEM(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "kek.pub.pem")
	os.WriteFile(pubFile, pem, 0o600)
	kek, err := hsm.OpenURI(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(kek)
	ec := envelope.EncryptionContext{"tenant": "a"}
	jsKeyring := map[string]any{"type": "raw-rsa", "namespace": hsm.DefaultNamespace, "name": "rsa-kek", "publicKeyFile": pubFile, "padding": padding}
	for _, suite := range suites {
		pt := randBytes(10_000)
		jsMsg, _, err := runJS(t, "encrypt", jsSpec{Keyrings: []map[string]any{jsKeyring}, Suite: suite.String(), Context: ec}, pt)
		if err != nil {
			t.Fatal(err)
		}
		got, h, err := envelope.Decrypt(ctx, jsMsg, kr, envelope.DecryptOptions{RequiredContext: ec})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("hsmenv through SoftHSM2 could not open JS's raw RSA message: %v", err)
		}
		if h.EDKs[0].ProviderID != "hsmenv" || string(h.EDKs[0].ProviderInfo) != "rsa-kek" {
			t.Fatalf("EDK %q/%q", h.EDKs[0].ProviderID, h.EDKs[0].ProviderInfo)
		}
	}
}
