package goesdk_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/pem"
	"fmt"
	"testing"

	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// deviceContext is the context of the device tests; "device" is the key
// the required-EC CMM leaves unstored.
var deviceContext = map[string]string{"device": "edge-1", "purpose": "device-ecdh-interop", "ключ": "値"}

// goEncryptsToDevice: the official Go ESDK, holding only pubPEM (what
// `hsmenv pubkey` printed for a key in a device), encrypts with its raw ECDH
// keyring (ephemeral key schema) under both committing suites, directly and
// through the required encryption context CMM; hsmenv decrypts each message
// with kek, the key in the device. A wrong value of the unstored pair must
// fail with an error wrongPair accepts.
func goEncryptsToDevice(t *testing.T, s *sdk, name string, curve primtypes.ECDHCurveSpec, pubPEM []byte, kek envelope.KEK, wrongPair func(error) bool) {
	t.Helper()
	ctx := context.Background()
	frame := int64(4096)
	block, _ := pem.Decode(pubPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("hsmenv pubkey printed %q", pubPEM)
	}
	recipient, err := rawecdh.ParsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	// The ESDK producer: the SubjectPublicKeyInfo DER, nothing else.
	kr, err := s.mpl.CreateRawEcdhKeyring(ctx, mpltypes.CreateRawEcdhKeyringInput{
		CurveSpec: curve,
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
			t.Run(fmt.Sprintf("%s/%v/required-ec=%v", name, suite, required), func(t *testing.T) {
				pt := randBytes(50_000)
				id := goSuite(suite)
				in := esdktypes.EncryptInput{Plaintext: pt, EncryptionContext: deviceContext, AlgorithmSuiteId: &id, FrameLength: &frame, Keyring: kr}
				opts := envelope.DecryptOptions{RequiredContext: deviceContext}
				if required {
					in.Keyring, in.MaterialsManager = nil, reqCMM
					opts = envelope.DecryptOptions{ReproducedContext: map[string]string{"device": "edge-1"}}
				}
				out, err := s.client.Encrypt(ctx, in)
				if err != nil {
					t.Fatalf("Go ESDK encrypt: %v", err)
				}
				checkDeviceEDK(t, out.Ciphertext, recipient, required)
				got, _, err := envelope.Decrypt(ctx, out.Ciphertext, envelope.NewKeyring(kek), opts)
				if err != nil {
					t.Fatalf("hsmenv through %s: %v", name, err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatal("hsmenv decrypted other plaintext")
				}
				if required {
					_, _, err := envelope.Decrypt(ctx, out.Ciphertext, envelope.NewKeyring(kek), envelope.DecryptOptions{ReproducedContext: map[string]string{"device": "edge-2"}})
					if err == nil || !wrongPair(err) {
						t.Fatalf("hsmenv with a wrong required pair: %v", err)
					}
				}
			})
		}
	}
}

// checkDeviceEDK checks that the Go ESDK's message has one raw-ecdh EDK to
// recipient and stores the "device" pair exactly when it is not required.
func checkDeviceEDK(t *testing.T, msg []byte, recipient *ecdh.PublicKey, required bool) {
	t.Helper()
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.EDKs) != 1 || h.EDKs[0].ProviderID != rawecdh.ProviderID {
		t.Fatalf("the Go ESDK wrote EDKs %+v", h.EDKs)
	}
	if info, err := rawecdh.ParseInfo(h.EDKs[0].ProviderInfo); err != nil || !info.Recipient.Equal(recipient) {
		t.Fatalf("the Go ESDK's EDK is not to the device key: %v", err)
	}
	if _, stored := h.Context["device"]; stored == required {
		t.Fatalf("required=%v, yet the header stores %v", required, h.Context)
	}
}
