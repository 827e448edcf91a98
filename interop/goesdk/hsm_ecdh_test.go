package goesdk_test

import (
	"context"
	"testing"

	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"

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
		kek, err := hsm.OpenURI(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		// A wrong value of the pair the message does not store reaches
		// the token KEK and fails there.
		goEncryptsToDevice(t, s, "SoftHSM2 "+key.typ, key.curve, pubPEM, kek, func(error) bool { return true })
	}
}
