package interop_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// The JS ESDK's raw RSA keyring (OAEP-SHA256) with the public key of a TPM
// key file encrypts; hsmenv decrypts through the TPM (swtpm).
func TestJSRawRSAToTPM(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "edge-kek.key")
	uri := "tpm:key-file=" + keyFile + "?device=" + sw.Device()
	if _, err := tpm.Generate(ctx, uri, tpm.KeyRSA2048); err != nil {
		t.Fatal(err)
	}
	pem, err := tpm.PublicKeyPEM(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "edge-kek.pub.pem")
	os.WriteFile(pubFile, pem, 0o600)
	kek, err := tpm.OpenURI(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(kek)
	jsKeyring := map[string]any{"type": "raw-rsa", "namespace": "hsmenv", "name": "edge-kek", "publicKeyFile": pubFile, "padding": "oaep-sha256"}
	ec := envelope.EncryptionContext{"device": "edge-1"}
	for _, suite := range suites {
		pt := randBytes(50_000)
		msg, _, err := runJS(t, "encrypt", jsSpec{Keyrings: []map[string]any{jsKeyring}, Suite: suite.String(), Context: ec}, pt)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{RequiredContext: ec})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("hsmenv through the TPM could not open JS's raw RSA message: %v", err)
		}
	}
}
