package hsm_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

var ecTypes = []struct {
	typ   string
	bits  int
	curve ecdh.Curve
}{
	{hsm.KeyECP256, 256, ecdh.P256()},
	{hsm.KeyECP384, 384, ecdh.P384()},
	{hsm.KeyECP521, 521, ecdh.P521()},
}

// ecRoundTrip encrypts with enc and decrypts with dec through the envelope,
// in suite s, binding a context of which one pair is not stored.
func ecRoundTrip(t *testing.T, enc, dec envelope.KEK, s envelope.SuiteID) {
	t.Helper()
	pt := make([]byte, 10_000)
	rand.Read(pt)
	ec := envelope.EncryptionContext{"purpose": "ecdh test", "tenant": "ключ"}
	msg, err := envelope.Encrypt(ctx, pt, envelope.NewKeyring(enc), envelope.EncryptOptions{Suite: s, Context: ec, RequiredContextKeys: []string{"tenant"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(dec), envelope.DecryptOptions{ReproducedContext: envelope.EncryptionContext{"tenant": "ключ"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("plaintext differs")
	}
}

// publicURI names the public key object of tok's key object, with no PIN
// source at all.
func publicURI(tok *softhsmtest.Token, object string) string {
	return "pkcs11:token=" + tok.Label + ";object=" + object + ";type=public-key?module-path=" + tok.Module
}

// Generated EC keys: the private key is a sensitive, never extractable
// token object that only derives; the public key is a public token object
// with no usage.
func TestECKeygen(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for _, c := range ecTypes {
		t.Run(c.typ, func(t *testing.T) {
			ki := generate(t, tok.URI(c.typ), c.typ)
			if ki.Class != "private-key" || ki.Type != "ec" || ki.Bits != c.bits || fmt.Sprint(ki.Usage) != "[derive]" {
				t.Fatalf("generated %+v", ki)
			}
			keys, err := hsm.List(ctx, tok.URI(c.typ))
			if err != nil || len(keys) != 2 {
				t.Fatalf("List: %v %+v", err, keys)
			}
			pub := keys[1]
			if pub.Class != "public-key" || pub.Type != "ec" || pub.Bits != c.bits || !pub.Token || len(pub.Usage) != 0 || !bytes.Equal(pub.ID, ki.ID) {
				t.Fatalf("public half %+v", pub)
			}
			// Every other usage flag of the private key is false, and the
			// public key is not a private object.
			p, slot := tok.Slot(t)
			h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
			if err != nil {
				t.Fatal(err)
			}
			defer p.CloseSession(h)
			for class, want := range map[uint]map[uint]bool{
				pkcs11.CKO_PRIVATE_KEY: {pkcs11.CKA_DERIVE: true, pkcs11.CKA_SIGN: false, pkcs11.CKA_SIGN_RECOVER: false, pkcs11.CKA_DECRYPT: false, pkcs11.CKA_UNWRAP: false, pkcs11.CKA_PRIVATE: true, pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false, pkcs11.CKA_NEVER_EXTRACTABLE: true},
				pkcs11.CKO_PUBLIC_KEY:  {pkcs11.CKA_DERIVE: false, pkcs11.CKA_VERIFY: false, pkcs11.CKA_VERIFY_RECOVER: false, pkcs11.CKA_ENCRYPT: false, pkcs11.CKA_WRAP: false, pkcs11.CKA_PRIVATE: false},
			} {
				obj := findOne(t, p, h, class, c.typ)
				for attr, v := range want {
					a, err := p.GetAttributeValue(h, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(attr, nil)})
					if err != nil || len(a[0].Value) != 1 || (a[0].Value[0] != 0) != v {
						t.Errorf("class %d attribute %#x: %v %v, want %v", class, attr, a, err, v)
					}
				}
			}
		})
	}
}

// findOne returns the one object of class labelled label, logging in if
// needed (the public key is found without).
func findOne(t *testing.T, p *pkcs11.Ctx, h pkcs11.SessionHandle, class uint, label string) pkcs11.ObjectHandle {
	t.Helper()
	if err := p.FindObjectsInit(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := p.FindObjects(h, 2)
	p.FindObjectsFinal(h)
	if err != nil || len(objs) != 1 {
		t.Fatalf("%d objects of class %d labelled %q: %v", len(objs), class, label, err)
	}
	return objs[0]
}

// Round trips on SoftHSM2 and NSS softokn, every curve, both suites: the
// producer holds only the public key (a KEK opened from the public key
// object, or the software ephemeral keyring given PublicKeyPEM's output),
// the token unwraps.
func TestECDHRoundTrips(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	nss := softhsmtest.NewNSS(t)
	for _, c := range ecTypes {
		generate(t, tok.URI(c.typ), c.typ)
		nss.ECKey(t, c.typ, c.bits)
		for _, tc := range []struct{ name, pubURI, privURI string }{
			{"softhsm2", publicURI(tok, c.typ), tok.URI(c.typ)},
			{"nss", strings.Replace(nss.URI(c.typ), ";object=", ";type=public-key;object=", 1), nss.URI(c.typ)},
		} {
			t.Run(tc.name+"/"+c.typ, func(t *testing.T) {
				enc, err := hsm.OpenURI(ctx, tc.pubURI)
				if err != nil {
					t.Fatal(err)
				}
				dec, err := hsm.OpenURI(ctx, tc.privURI)
				if err != nil {
					t.Fatal(err)
				}
				if enc.Mechanism() != hsm.MechRawECDH || dec.Mechanism() != hsm.MechRawECDH {
					t.Fatalf("mechanisms %s, %s", enc.Mechanism(), dec.Mechanism())
				}
				pemBytes, err := hsm.PublicKeyPEM(ctx, tc.privURI)
				if err != nil {
					t.Fatal(err)
				}
				// From the private key object (which has no CKA_EC_POINT),
				// the same public key.
				fromPriv, err := hsm.PublicKeyPEM(ctx, strings.Replace(tc.privURI, ";object=", ";type=private-key;object=", 1))
				if err != nil || !bytes.Equal(fromPriv, pemBytes) {
					t.Fatalf("PublicKeyPEM of the private key: %v\n%s\nwant\n%s", err, fromPriv, pemBytes)
				}
				pub, err := rawecdh.ParsePublicKeyPEM(pemBytes)
				if err != nil || pub.Curve() != c.curve {
					t.Fatalf("PublicKeyPEM: %v", err)
				}
				soft := rawecdh.NewEphemeral(pub)
				for _, s := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
					ecRoundTrip(t, enc, dec, s)
					ecRoundTrip(t, soft, dec, s)
					ecRoundTrip(t, dec, dec, s)
				}
			})
		}
	}
}

// Opening the public key and wrapping log in to nothing: no PIN is asked
// for and the token stays in a public session; unwrapping then logs in.
func TestECDHWrapDoesNotLogIn(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("ec"), hsm.KeyECP256)
	p, slot := tok.Slot(t)
	if err := p.CloseAllSessions(slot); err != nil { // logs the token out
		t.Fatal(err)
	}
	var asked atomic.Int32
	askPIN := hsm.WithPIN(func(context.Context, string) (string, error) {
		asked.Add(1)
		return tok.PIN, nil
	})
	kek, err := hsm.OpenURI(ctx, publicURI(tok, "ec"), askPIN)
	if err != nil {
		t.Fatal(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	ec := envelope.EncryptionContext{"a": "b"}
	edk, err := kek.Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := hsm.PublicKeyPEM(ctx, publicURI(tok, "ec"))
	if err != nil || !bytes.Contains(pemBytes, []byte("BEGIN PUBLIC KEY")) {
		t.Fatalf("PublicKeyPEM without a PIN: %v", err)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("opening the public key and wrapping asked for the PIN %d times", n)
	}
	if state := sessionState(t, p, slot); state != pkcs11.CKS_RW_PUBLIC_SESSION {
		t.Fatalf("after wrapping the token is in session state %d, want public", state)
	}
	got, err := kek.Unwrap(ctx, edk, ec)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap: %v", err)
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("unwrapping asked for the PIN %d times, want 1", n)
	}
	// Without any PIN source, the public key still wraps; unwrapping says
	// a PIN is missing.
	p.CloseAllSessions(slot)
	noPIN, err := hsm.OpenURI(ctx, publicURI(tok, "ec"))
	if err != nil {
		t.Fatal(err)
	}
	if edk, err = noPIN.Wrap(ctx, dek, ec); err != nil {
		t.Fatal(err)
	}
	if _, err := noPIN.Unwrap(ctx, edk, ec); !errors.Is(err, hsm.ErrPIN) {
		t.Fatalf("unwrap without a PIN: %v, want ErrPIN", err)
	}
}

// sessionState returns the state of a new session: whether the token is
// logged in.
func sessionState(t *testing.T, p *pkcs11.Ctx, slot uint) uint {
	t.Helper()
	h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(h)
	info, err := p.GetSessionInfo(h)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// A KEK claims the raw ECDH EDKs whose recipient is its public key, and no
// other: not another token key's, not a software key's, not malformed ones.
func TestECDHClaims(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("a"), hsm.KeyECP256)
	generate(t, tok.URI("b"), hsm.KeyECP256)
	generate(t, tok.URI("c"), hsm.KeyECP384)
	a, err := hsm.OpenURI(ctx, tok.URI("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hsm.OpenURI(ctx, tok.URI("b"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := hsm.OpenURI(ctx, tok.URI("c"))
	if err != nil {
		t.Fatal(err)
	}
	ec := envelope.EncryptionContext{"a": "b"}
	dek := make([]byte, 32)
	edk, err := a.Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	if edk.ProviderID != rawecdh.ProviderID || len(edk.ProviderInfo) != 75 || len(edk.Ciphertext) != 112 {
		t.Fatalf("EDK layout: %q, %d-byte info, %d-byte ciphertext", edk.ProviderID, len(edk.ProviderInfo), len(edk.Ciphertext))
	}
	if !a.Claims(edk) || b.Claims(edk) || c.Claims(edk) {
		t.Fatalf("claims: a %v, b %v, c %v", a.Claims(edk), b.Claims(edk), c.Claims(edk))
	}
	if _, err := b.Unwrap(ctx, edk, ec); !errors.Is(err, hsm.ErrUnwrap) || !strings.Contains(err.Error(), "not for") {
		t.Fatalf("b unwrapping a's EDK: %v", err)
	}
	other, _ := ecdh.P256().GenerateKey(rand.Reader)
	foreign, err := rawecdh.NewEphemeral(other.PublicKey()).Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Claims(foreign) {
		t.Fatal("claims an EDK for a software key")
	}
	for name, mutate := range map[string]func(*envelope.EncryptedDataKey){
		"provider id":      func(e *envelope.EncryptedDataKey) { e.ProviderID = "hsmenv" },
		"version":          func(e *envelope.EncryptedDataKey) { e.ProviderInfo[0] = 2 },
		"short info":       func(e *envelope.EncryptedDataKey) { e.ProviderInfo = e.ProviderInfo[:74] },
		"recipient flip":   func(e *envelope.EncryptedDataKey) { e.ProviderInfo[5] ^= 1 }, // 0x02 <-> 0x03: the negated point
		"recipient length": func(e *envelope.EncryptedDataKey) { e.ProviderInfo[4] = 32 },
	} {
		e := envelope.EncryptedDataKey{ProviderID: edk.ProviderID, ProviderInfo: bytes.Clone(edk.ProviderInfo), Ciphertext: edk.Ciphertext}
		mutate(&e)
		if a.Claims(e) {
			t.Errorf("claims an EDK with its %s altered", name)
		}
	}
}

// A wrong context, or an EDK altered, is one error naming the cause.
func TestECDHTampering(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("ec"), hsm.KeyECP384)
	kek, err := hsm.OpenURI(ctx, tok.URI("ec"))
	if err != nil {
		t.Fatal(err)
	}
	ec := envelope.EncryptionContext{"a": "b"}
	dek := make([]byte, 32)
	rand.Read(dek)
	edk, err := kek.Wrap(ctx, dek, ec)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ecdh.P384().GenerateKey(rand.Reader)
	check := func(name string, e envelope.EncryptedDataKey, ec envelope.EncryptionContext, want error, hint string) {
		t.Helper()
		got, err := kek.Unwrap(ctx, e, ec)
		if err == nil {
			t.Fatalf("%s: unwrapped %x", name, got)
		}
		if !errors.Is(err, hsm.ErrUnwrap) || !errors.Is(err, want) || strings.Count(err.Error(), hint) != 1 || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: %v; want ErrUnwrap and %v, saying %q once", name, err, want, hint)
		}
		t.Logf("%s: %v", name, err)
	}
	check("wrong context", edk, envelope.EncryptionContext{"a": "c"}, rawecdh.ErrCommitment, "wrong key or encryption context")
	salt := clone(edk)
	salt.Ciphertext[0] ^= 1
	check("salt altered", salt, ec, rawecdh.ErrCommitment, "wrong key or encryption context")
	wrapped := clone(edk)
	wrapped.Ciphertext[70] ^= 1
	check("wrapped key altered", wrapped, ec, rawecdh.ErrMalformed, "the EDK was altered")
	// Another valid sender key: the token derives another secret.
	sender := clone(edk)
	copy(sender.ProviderInfo[1+4+49+4:], rawecdh.Compressed(other.PublicKey()))
	check("sender replaced", sender, ec, rawecdh.ErrCommitment, "wrong key or encryption context")
	short := clone(edk)
	short.Ciphertext = short.Ciphertext[:100]
	check("truncated", short, ec, rawecdh.ErrMalformed, "EDK ciphertext is 100 bytes")

	// Through the envelope (the pair not stored, so the wrong value reaches
	// the KEK), the message fails with ErrNoKEK carrying the cause.
	kr := envelope.NewKeyring(kek)
	msg, err := envelope.Encrypt(ctx, []byte("secret"), kr, envelope.EncryptOptions{Context: ec, RequiredContextKeys: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{ReproducedContext: envelope.EncryptionContext{"a": "c"}})
	if !errors.Is(err, envelope.ErrNoKEK) || !errors.Is(err, rawecdh.ErrCommitment) {
		t.Fatalf("decrypt with a wrong context: %v", err)
	}
	t.Logf("decrypt with a wrong context: %v", err)
}

func clone(e envelope.EncryptedDataKey) envelope.EncryptedDataKey {
	return envelope.EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: bytes.Clone(e.ProviderInfo), Ciphertext: bytes.Clone(e.Ciphertext)}
}

// The derived secret is a session object destroyed at once: after many
// unwraps, failed ones too, the token holds as many objects as before.
func TestECDHDerivedSecretDestroyed(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("ec"), hsm.KeyECP256)
	kek, err := hsm.OpenURI(ctx, tok.URI("ec"))
	if err != nil {
		t.Fatal(err)
	}
	ec := envelope.EncryptionContext{"a": "b"}
	edk, err := kek.Wrap(ctx, make([]byte, 32), ec)
	if err != nil {
		t.Fatal(err)
	}
	before := countObjects(t, tok)
	if before != 2 {
		t.Fatalf("%d objects on the token before, want the key pair", before)
	}
	for i := 0; i < 20; i++ {
		if _, err := kek.Unwrap(ctx, edk, ec); err != nil {
			t.Fatal(err)
		}
		if _, err := kek.Unwrap(ctx, edk, envelope.EncryptionContext{}); !errors.Is(err, rawecdh.ErrCommitment) {
			t.Fatalf("wrong context: %v", err)
		}
	}
	if after := countObjects(t, tok); after != before {
		t.Fatalf("%d objects on the token after 40 unwraps, %d before", after, before)
	}
}

// countObjects counts every object the application sees on tok: token
// objects and the session objects of all its sessions, the pool's too.
func countObjects(t *testing.T, tok *softhsmtest.Token) int {
	t.Helper()
	p, slot := tok.Slot(t)
	h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(h)
	if err := p.Login(h, pkcs11.CKU_USER, tok.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.Fatal(err)
	}
	if err := p.FindObjectsInit(h, nil); err != nil {
		t.Fatal(err)
	}
	defer p.FindObjectsFinal(h)
	objs, _, err := p.FindObjects(h, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// What does not fit an EC key is refused, and a token that cannot derive
// gets no EC key.
func TestECDHRefusals(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("ec"), hsm.KeyECP256)
	for _, extra := range []string{"x-mechanism=aes-gcm", "x-mechanism=rsa-oaep", "x-name=n", "x-namespace=ns", "x-padding=oaep-sha256"} {
		if _, err := hsm.OpenURI(ctx, tok.URI("ec", extra)); !errors.Is(err, hsm.ErrMechanism) {
			t.Errorf("%s: %v, want ErrMechanism", extra, err)
		}
	}
	if _, err := hsm.OpenURI(ctx, tok.URI("ec", "x-mechanism=raw-ecdh")); err != nil {
		t.Errorf("x-mechanism=raw-ecdh: %v", err)
	}
	noDerive := softhsmtest.New(t, softhsmtest.Options{Mechanisms: []string{"CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"}})
	if _, err := hsm.Generate(ctx, noDerive.URI("ec"), hsm.KeyECP256); !errors.Is(err, hsm.ErrMechanism) || !strings.Contains(err.Error(), "CKM_ECDH1_DERIVE") {
		t.Fatalf("EC key on a token without ECDH: %v", err)
	}
	if _, err := hsm.Generate(ctx, tok.URI("x"), "ec-p192"); !errors.Is(err, hsm.ErrMechanism) {
		t.Fatalf("ec-p192: %v", err)
	}
}

// Concurrent wraps and unwraps share the key and the pool safely.
func TestECDHConcurrent(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	generate(t, tok.URI("ec"), hsm.KeyECP256)
	kek, err := hsm.OpenURI(ctx, tok.URI("ec"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dek := make([]byte, 32)
			ec := envelope.EncryptionContext{"g": fmt.Sprint(g)}
			for i := 0; i < 20; i++ {
				rand.Read(dek)
				edk, err := kek.Wrap(ctx, dek, ec)
				if err == nil {
					var got []byte
					if got, err = kek.Unwrap(ctx, edk, ec); err == nil && !bytes.Equal(got, dek) {
						err = errors.New("unwrapped another key")
					}
				}
				if err != nil {
					errs <- err
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
