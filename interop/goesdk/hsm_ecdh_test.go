package goesdk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"testing"

	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// TestGoESDKRawECDHToSoftHSM: the official Go ESDK (v0.4.0), holding only
// the DER SubjectPublicKeyInfo inside the PEM that hsm.PublicKeyPEM (`hsmenv
// pubkey`) exports from an EC key pair made in SoftHSM2, encrypts with its
// raw ECDH keyring (ephemeral key schema) on P-256 and P-384 under both
// committing suites, directly and through the required encryption context
// CMM; hsmenv decrypts each message with the private key in the token
// (CKM_ECDH1_DERIVE).
func TestGoESDKRawECDHToSoftHSM(t *testing.T) {
	ctx := context.Background()
	s := goSDK(t)
	tok := softhsmtest.New(t, softhsmtest.Options{})
	ec := map[string]string{"device": "edge-1", "purpose": "pkcs11-ecdh-interop", "ключ": "値"}
	frame := int64(4096)
	for _, key := range []struct {
		typ   string
		curve primtypes.ECDHCurveSpec
	}{
		{hsm.KeyECP256, primtypes.ECDHCurveSpecEccNistP256},
		{hsm.KeyECP384, primtypes.ECDHCurveSpecEccNistP384},
	} {
		uri := tok.URI(key.typ)
		if _, err := hsm.Generate(ctx, uri, key.typ); err != nil {
			t.Fatal(err)
		}
		pubPEM, err := hsm.PublicKeyPEM(ctx, uri)
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
		kek, err := hsm.OpenURI(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		// The ESDK producer: the SubjectPublicKeyInfo DER, nothing else.
		kr, err := s.mpl.CreateRawEcdhKeyring(ctx, mpltypes.CreateRawEcdhKeyringInput{
			CurveSpec: key.curve,
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
				t.Run(fmt.Sprintf("%s/%v/required-ec=%v", key.typ, suite, required), func(t *testing.T) {
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
						t.Fatalf("the Go ESDK's EDK is not to the token key: %v", err)
					}
					if _, stored := h.Context["device"]; stored == required {
						t.Fatalf("required=%v, yet the header stores %v", required, h.Context)
					}
					got, _, err := envelope.Decrypt(ctx, out.Ciphertext, envelope.NewKeyring(kek), opts)
					if err != nil {
						t.Fatalf("hsmenv through SoftHSM2: %v", err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatal("hsmenv decrypted other plaintext")
					}
					// A wrong value of the pair the message does not store
					// reaches the token KEK and fails there.
					if required {
						_, _, err := envelope.Decrypt(ctx, out.Ciphertext, envelope.NewKeyring(kek), envelope.DecryptOptions{ReproducedContext: map[string]string{"device": "edge-2"}})
						if err == nil {
							t.Fatal("hsmenv decrypted with a wrong required pair")
						}
					}
				})
			}
		}
	}
}
