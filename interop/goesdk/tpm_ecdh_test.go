package goesdk_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// TestGoESDKRawECDHToTPM: the official Go ESDK (v0.4.0), holding only the
// public key `hsmenv pubkey` exports from a TPM ECC key file, encrypts with
// its raw ECDH keyring (ephemeral key schema, P-256) under both committing
// suites, directly and through the required encryption context CMM; hsmenv
// decrypts each message with the key in the TPM (swtpm: TPM2_ECDH_ZGen),
// for a key without a policy and one with a PIN and a PCR policy.
func TestGoESDKRawECDHToTPM(t *testing.T) {
	ctx := context.Background()
	sw := tpmtest.Start(t)
	d, err := tpm.OpenDevice(sw.Device())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close() // before swtpm stops
	s := goSDK(t)
	dir := t.TempDir()
	for _, key := range []struct{ name, attrs, query string }{
		{"edge", "", ""},
		{"edge-pcr-pin", ";pcrs=sha256:16;pin=yes", "&pin-value=correct%20horse"},
	} {
		uri := "tpm:key-file=" + filepath.Join(dir, key.name+".tpmkey") + key.attrs + "?device=" + sw.Device() + key.query
		if _, err := tpm.Generate(ctx, uri, tpm.KeyECCP256); err != nil {
			t.Fatal(err)
		}
		pubPEM, err := tpm.PublicKeyPEM(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		kek, err := tpm.OpenURI(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		recipient, err := rawecdh.ParsePublicKeyPEM(pubPEM)
		if err != nil || !recipient.Equal(kek.(*tpm.KeyKEK).PublicKey()) {
			t.Fatalf("hsmenv pubkey printed another key than the key file's: %v", err)
		}
		// A wrong value of the pair the message does not store reaches
		// the TPM KEK and fails its commitment check.
		goEncryptsToDevice(t, s, "TPM "+key.name, primtypes.ECDHCurveSpecEccNistP256, pubPEM, kek, func(err error) bool {
			return errors.Is(err, tpm.ErrUnwrap) && errors.Is(err, rawecdh.ErrCommitment)
		})
	}
}
