package goesdk_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// requiredCMM returns the Go ESDK's required encryption context CMM over a
// default CMM of keyring.
func (s *sdk) requiredCMM(t *testing.T, keyring mpltypes.IKeyring, keys []string) mpltypes.ICryptographicMaterialsManager {
	t.Helper()
	ctx := context.Background()
	s.mu.Lock()
	defer s.mu.Unlock()
	under, err := s.mpl.CreateDefaultCryptographicMaterialsManager(ctx, mpltypes.CreateDefaultCryptographicMaterialsManagerInput{Keyring: keyring})
	if err != nil {
		t.Fatalf("Go ESDK default CMM: %v", err)
	}
	cmm, err := s.mpl.CreateRequiredEncryptionContextCMM(ctx, mpltypes.CreateRequiredEncryptionContextCMMInput{UnderlyingCMM: under, RequiredEncryptionContextKeys: keys})
	if err != nil {
		t.Fatalf("Go ESDK required encryption context CMM: %v", err)
	}
	return cmm
}

// subset returns the pairs of ec under keys.
func subset(ec envelope.EncryptionContext, keys []string) envelope.EncryptionContext {
	out := envelope.EncryptionContext{}
	for _, k := range keys {
		out[k] = ec[k]
	}
	return out
}

// without returns ec without the pairs of keys.
func without(ec envelope.EncryptionContext, keys []string) envelope.EncryptionContext {
	out := maps.Clone(ec)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// TestRequiredContext: the ESDK required encryption context CMM. Its
// required pairs are authenticated (the header tag's AAD, and the KEKs that
// bind the context: raw AES, raw ECDH) but not stored. Under raw AES-256,
// raw RSA OAEP-SHA256 (whose EDK binds no context: only the header tag
// catches a missing pair) and raw ECDH static P-384, both suites, one, two
// and all keys required:
//
//   - the Go ESDK encrypts through CreateRequiredEncryptionContextCMM;
//     hsmenv decrypts with ReproducedContext = the required pairs only, and
//     = all pairs; it refuses the message without them, with a wrong value
//     and with a pair the message never had;
//   - hsmenv encrypts with RequiredContextKeys; the Go ESDK decrypts with
//     the reproduced context (required pairs only, and all pairs) through
//     the required-EC CMM and through a default CMM, and refuses it
//     without them, with a wrong value and with a pair it never had.
func TestRequiredContext(t *testing.T) {
	s := goSDK(t)
	ec := envelope.EncryptionContext{"tenant": "a", "purpose": "required-ec", "ключ": "値"}
	keysets := [][]string{{"ключ"}, {"tenant", "ключ"}, {"tenant", "purpose", "ключ"}}

	// The keys: raw AES and RSA from the matrix, and a static ECDH pair
	// (both sides hold the sender's private key and the recipient's
	// public key).
	keyDefs := keys(t, "aes256", "oaep-sha256")
	snd, rcp := newECDHKey(t, ecdhCurves[1].c), newECDHKey(t, ecdhCurves[1].c)
	keyDefs = append(keyDefs, &keyDef{
		label: "ecdh-p384-static",
		kek:   rawecdh.NewStatic(snd.priv, rcp.pub),
		kr:    s.ecdhKeyring(t, primtypes.ECDHCurveSpecEccNistP384, goStatic(snd, rcp)),
	})
	// isRefusal says whether err is hsmenv's refusal of a message whose
	// unstored pairs are missing or wrong: the KEKs that bind the context
	// fail to unwrap; for RSA, only the header tag can tell.
	isRefusal := func(k *keyDef, err error) bool {
		switch k.label {
		case "aes256":
			return errors.Is(err, envelope.ErrNoKEK) && errors.Is(err, rawaes.ErrBadKey)
		case "ecdh-p384-static":
			return errors.Is(err, envelope.ErrNoKEK) && errors.Is(err, rawecdh.ErrCommitment)
		}
		return errors.Is(err, envelope.ErrHeaderAuth)
	}

	for _, k := range keyDefs {
		for _, suite := range suites {
			for _, req := range keysets {
				stored, required := without(ec, req), subset(ec, req)
				name := fmt.Sprintf("%s/%v/required=%s", k.label, suite, strings.Join(req, "+"))
				cmm := s.requiredCMM(t, k.kr, req)
				// Reproduced contexts that must not open the message: no
				// pairs, the stored ones only, a wrong value of a required
				// pair, a pair the message never had.
				wrong := maps.Clone(required)
				wrong[req[0]] += "x"
				extra := maps.Clone(required)
				extra["never-there"] = "1"
				refusals := []struct {
					name       string
					reproduced envelope.EncryptionContext
				}{{"none", nil}, {"stored-only", stored}, {"wrong-value", wrong}, {"extra-pair", extra}}
				logRefusal := func(t *testing.T, format string, args ...any) {
					t.Helper()
					if len(req) == 1 { // one key set is enough for the log
						t.Logf(format, args...)
					}
				}

				t.Run(name+"/go-encrypts", func(t *testing.T) {
					t.Parallel()
					pt := randBytes(10000)
					msg := s.encrypt(t, pt, nil, cmm, suite, 4096, ec)
					kr := envelope.NewKeyring(k.kek)
					for _, reproduced := range []envelope.EncryptionContext{required, ec} {
						h := hsmenvOpens(t, msg, pt, kr, suite, 4096, stored, envelope.DecryptOptions{ReproducedContext: reproduced})
						if !maps.Equal(h.UnstoredContext, required) {
							t.Fatalf("reproduced %q: hsmenv reports the unstored pairs %q, want %q", reproduced, h.UnstoredContext, required)
						}
					}
					for _, c := range refusals {
						got, _, err := envelope.Decrypt(context.Background(), msg, kr, envelope.DecryptOptions{ReproducedContext: c.reproduced})
						if err == nil || got != nil {
							t.Fatalf("hsmenv decrypted with the reproduced context %q (%s)", c.reproduced, c.name)
						}
						if !isRefusal(k, err) {
							t.Fatalf("reproduced %s: %v", c.name, err)
						}
						logRefusal(t, "hsmenv, reproduced %s: %v", c.name, err)
					}
				})

				t.Run(name+"/hsmenv-encrypts", func(t *testing.T) {
					t.Parallel()
					pt := randBytes(10000)
					msg, err := envelope.Encrypt(context.Background(), pt, envelope.NewKeyring(k.kek),
						envelope.EncryptOptions{Suite: suite, FrameSize: 4096, Context: ec, RequiredContextKeys: req})
					if err != nil {
						t.Fatal(err)
					}
					// The header stores only the other pairs.
					hsmenvOpens(t, msg, pt, envelope.NewKeyring(k.kek), suite, 4096, stored, envelope.DecryptOptions{ReproducedContext: required})
					for _, reproduced := range []envelope.EncryptionContext{required, ec} {
						goOpens(t, s, msg, pt, nil, cmm, reproduced, ec)
						goOpens(t, s, msg, pt, k.kr, nil, reproduced, ec)
					}
					for _, c := range refusals {
						for _, via := range []struct {
							name string
							kr   mpltypes.IKeyring
							cmm  mpltypes.ICryptographicMaterialsManager
						}{{"required-ec-cmm", nil, cmm}, {"default-cmm", k.kr, nil}} {
							if _, err := s.decrypt(msg, via.kr, via.cmm, c.reproduced); err == nil {
								t.Fatalf("the Go ESDK (%s) decrypted without the required pairs (reproduced %s)", via.name, c.name)
							} else {
								logRefusal(t, "Go ESDK %s, reproduced %s: %v", via.name, c.name, err)
							}
						}
					}
				})
			}
		}
	}
}
