package hsm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

var ctx = context.Background()

// roundTrip encrypts under kek and decrypts with kek, through the envelope.
func roundTrip(t *testing.T, kek envelope.KEK) {
	t.Helper()
	kr := envelope.NewKeyring(kek)
	pt := make([]byte, 100_000)
	rand.Read(pt)
	ec := envelope.EncryptionContext{"purpose": "test", "ключ": "値"}
	msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Context: ec})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{RequiredContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("plaintext differs")
	}
}

func generate(t *testing.T, uri, typ string) *hsm.KeyInfo {
	t.Helper()
	ki, err := hsm.Generate(ctx, uri, typ)
	if err != nil {
		t.Fatalf("Generate %s: %v", typ, err)
	}
	if !ki.Token || !ki.Sensitive || ki.Extractable || !ki.NeverExtractable || !ki.AlwaysSensitive {
		t.Fatalf("generated key attributes: %+v", ki)
	}
	return ki
}

func TestSoftHSMKEKs(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	cases := []struct {
		object, typ, mech, want string
		usage                   []string
	}{
		{"aes-default", hsm.KeyAES256, "", hsm.MechAESGCM, []string{"encrypt", "decrypt"}},
		{"aes-kw", hsm.KeyAES256, hsm.MechAESKW, hsm.MechAESKW, []string{"wrap", "unwrap"}},
		{"aes-kwp", hsm.KeyAES256, hsm.MechAESKWP, hsm.MechAESKWP, []string{"wrap", "unwrap"}},
		{"rsa3072", hsm.KeyRSA3072, "", hsm.MechRSAOAEP, []string{"decrypt"}},
		{"rsa2048", hsm.KeyRSA2048, "", hsm.MechRSAOAEP, []string{"decrypt"}},
	}
	for _, c := range cases {
		t.Run(c.object, func(t *testing.T) {
			var extra []string
			if c.mech != "" {
				extra = append(extra, "x-mechanism="+c.mech)
			}
			uri := tok.URI(c.object, extra...)
			ki := generate(t, uri, c.typ)
			if fmt.Sprint(ki.Usage) != fmt.Sprint(c.usage) {
				t.Fatalf("usage %v, want %v", ki.Usage, c.usage)
			}
			kek, err := hsm.OpenURI(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			if kek.Mechanism() != c.want {
				t.Fatalf("mechanism %s, want %s", kek.Mechanism(), c.want)
			}
			roundTrip(t, kek)
			// Without x-mechanism, the key's usage attributes pick the same
			// mechanism family (a key-wrap key stays a key-wrap key).
			plain, err := hsm.OpenURI(ctx, tok.URI(c.object))
			if err != nil {
				t.Fatal(err)
			}
			if (plain.Mechanism() == hsm.MechAESKW || plain.Mechanism() == hsm.MechAESKWP) != (c.want == hsm.MechAESKW || c.want == hsm.MechAESKWP) {
				t.Fatalf("without x-mechanism: %s, made for %s", plain.Mechanism(), c.want)
			}
			roundTrip(t, plain)
		})
	}
	// The same label twice is refused.
	if _, err := hsm.Generate(ctx, tok.URI("aes-default"), hsm.KeyAES256); !errors.Is(err, hsm.ErrExists) {
		t.Fatalf("duplicate label: %v", err)
	}
	keys, err := hsm.List(ctx, tok.URI(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 7 { // 3 AES + 2 × (private + public)
		t.Fatalf("List: %d keys: %+v", len(keys), keys)
	}
	pem, err := hsm.PublicKeyPEM(ctx, tok.URI("rsa3072"))
	if err != nil || !bytes.Contains(pem, []byte("BEGIN PUBLIC KEY")) {
		t.Fatalf("PublicKeyPEM: %v %s", err, pem)
	}
}

// A token without AES-GCM (like YubiHSM2 or NSS) gets key wrap; one without
// any AES KEK mechanism says so.
func TestRestrictedTokens(t *testing.T) {
	noGCM := softhsmtest.New(t, softhsmtest.Options{Mechanisms: []string{"CKM_AES_KEY_GEN", "CKM_AES_KEY_WRAP", "CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS_OAEP"}})
	uri := noGCM.URI("kek")
	ki := generate(t, uri, hsm.KeyAES256)
	if fmt.Sprint(ki.Usage) != "[wrap unwrap]" {
		t.Fatalf("usage %v", ki.Usage)
	}
	kek, err := hsm.OpenURI(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if kek.Mechanism() != hsm.MechAESKW {
		t.Fatalf("mechanism %s", kek.Mechanism())
	}
	roundTrip(t, kek)
	if _, err := hsm.OpenURI(ctx, noGCM.URI("kek", "x-mechanism=aes-gcm")); !errors.Is(err, hsm.ErrMechanism) {
		t.Fatalf("forcing GCM on a token without it: %v", err)
	}

	rsaOnly := softhsmtest.New(t, softhsmtest.Options{Mechanisms: []string{"CKM_AES_KEY_GEN", "CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS_OAEP"}})
	if _, err := hsm.Generate(ctx, rsaOnly.URI("kek"), hsm.KeyAES256); !errors.Is(err, hsm.ErrMechanism) {
		t.Fatalf("AES KEK on a token without AES wrapping: %v", err)
	}
	generate(t, rsaOnly.URI("rsa"), hsm.KeyRSA2048)
	rk, err := hsm.OpenURI(ctx, rsaOnly.URI("rsa"))
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, rk)
}

func TestNSSSoftokn(t *testing.T) {
	nss := softhsmtest.NewNSS(t)
	nss.AESKey(t, "nss-aes", nil)
	kek, err := hsm.OpenURI(ctx, nss.URI("nss-aes"))
	if err != nil {
		t.Fatal(err)
	}
	if kek.Mechanism() != hsm.MechAESKW {
		t.Fatalf("NSS mechanism %s", kek.Mechanism())
	}
	roundTrip(t, kek)
	nss.RSAKey(t, "nss-rsa", 2048)
	for _, padding := range []string{"oaep-sha256", "oaep-sha1"} {
		rk, err := hsm.OpenURI(ctx, nss.URI("nss-rsa", "x-padding="+padding))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, rk)
	}
}

func TestConcurrentWrapUnwrap(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	uri := tok.URI("kek")
	generate(t, uri, hsm.KeyAES256)
	kek, err := hsm.OpenURI(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	n := 1000
	if testing.Short() {
		n = 100
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dek := make([]byte, 32)
			ec := envelope.EncryptionContext{"g": fmt.Sprint(g)}
			for i := 0; i < n; i++ {
				rand.Read(dek)
				edk, err := kek.Wrap(ctx, dek, ec)
				if err != nil {
					errs <- err
					return
				}
				got, err := kek.Unwrap(ctx, edk, ec)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, dek) {
					errs <- errors.New("unwrapped a different key")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Vendor profiles can be forced from the URI, changing the mechanism choice.
func TestProfiles(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("kw", "x-profile=nss"), hsm.KeyAES256)
	kek, err := hsm.OpenURI(ctx, tok.URI("kw", "x-profile=nss"))
	if err != nil {
		t.Fatal(err)
	}
	if kek.Mechanism() != hsm.MechAESKW {
		t.Fatalf("nss profile chose %s", kek.Mechanism())
	}
	if _, err := hsm.Generate(ctx, tok.URI("y", "x-profile=yubihsm2"), hsm.KeyAES256); !errors.Is(err, hsm.ErrMechanism) {
		t.Fatalf("AES KEK under the yubihsm2 profile: %v", err)
	}
	if _, err := hsm.OpenURI(ctx, tok.URI("kw", "x-profile=nonesuch")); !errors.Is(err, hsm.ErrMechanism) {
		t.Fatalf("unknown profile: %v", err)
	}
}
