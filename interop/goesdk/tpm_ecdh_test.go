package goesdk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope"
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
	ec := map[string]string{"device": "edge-1", "purpose": "tpm-ecdh-interop", "ключ": "値"}
	frame := int64(4096)
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
		block, _ := pem.Decode(pubPEM)
		if block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("hsmenv pubkey printed %q", pubPEM)
		}
		recipient, err := rawecdh.ParsePublicKeyPEM(pubPEM)
		if err != nil {
			t.Fatal(err)
		}
		kek, err := tpm.OpenURI(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		if !recipient.Equal(kek.(*tpm.KeyKEK).PublicKey()) {
			t.Fatal("hsmenv pubkey printed another key than the key file's")
		}
		// The ESDK producer: the SubjectPublicKeyInfo DER, nothing else.
		kr, err := s.mpl.CreateRawEcdhKeyring(ctx, mpltypes.CreateRawEcdhKeyringInput{
			CurveSpec: primtypes.ECDHCurveSpecEccNistP256,
			KeyAgreementScheme: &mpltypes.RawEcdhStaticConfigurationsMemberEphemeralPrivateKeyToStaticPublicKey{
				Value: mpltypes.EphemeralPrivateKeyToStaticPublicKeyInput{RecipientPublicKey: block.Bytes}},
		})
		if err != nil {
			t.Fatal(err)
		}
		cmm, err := s.mpl.CreateDefaultCryptographicMaterialsManager(ctx, mpltypes.CreateDefaultCryptographicMaterialsManagerInput{Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		reqCMM, err := s.mpl.CreateRequiredEncryptionContextCMM(ctx, mpltypes.CreateRequiredEncryptionContextCMMInput{UnderlyingCMM: cmm, RequiredEncryptionContextKeys: []string{"device"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, suite := range suites {
			for _, required := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/required-ec=%v", key.name, suite, required), func(t *testing.T) {
					pt := make([]byte, 50_000)
					rand.Read(pt)
					id := goSuite(suite)
					in := esdktypes.EncryptInput{Plaintext: pt, EncryptionContext: ec, AlgorithmSuiteId: &id, FrameLength: &frame, Keyring: kr}
					opts := envelope.DecryptOptions{RequiredContext: ec}
					if required {
						in.Keyring, in.MaterialsManager = nil, reqCMM
						opts = envelope.DecryptOptions{ReproducedContext: map[string]string{"device": "edge-1"}}
					}
					out, err := s.client.Encrypt(ctx, in)
					if err != nil {
						t.Fatalf("Go ESDK encrypt: %v", err)
					}
					h, err := envelope.ParseHeader(bytes.NewReader(out.Ciphertext))
					if err != nil {
						t.Fatal(err)
					}
					if len(h.EDKs) != 1 || h.EDKs[0].ProviderID != rawecdh.ProviderID {
						t.Fatalf("the Go ESDK wrote EDKs %+v", h.EDKs)
					}
					if info, err := rawecdh.ParseInfo(h.EDKs[0].ProviderInfo); err != nil || !info.Recipient.Equal(recipient) {
						t.Fatalf("the Go ESDK's EDK is not to the TPM key: %v", err)
					}
					if _, stored := h.Context["device"]; stored == required {
						t.Fatalf("required=%v, yet the header stores %v", required, h.Context)
					}
					got, _, err := envelope.Decrypt(ctx, out.Ciphertext, envelope.NewKeyring(kek), opts)
					if err != nil {
						t.Fatalf("hsmenv through the TPM: %v", err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatal("hsmenv decrypted other plaintext")
					}
					// A wrong value of the pair the message does not store
					// reaches the TPM KEK and fails its commitment check.
					if required {
						_, _, err := envelope.Decrypt(ctx, out.Ciphertext, envelope.NewKeyring(kek), envelope.DecryptOptions{ReproducedContext: map[string]string{"device": "edge-2"}})
						if !errors.Is(err, tpm.ErrUnwrap) || !errors.Is(err, rawecdh.ErrCommitment) {
							t.Fatalf("hsmenv with a wrong required pair: %v", err)
						}
					}
				})
			}
		}
	}
}
