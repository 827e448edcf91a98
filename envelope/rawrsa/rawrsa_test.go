package rawrsa_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPKCS1ImplicitRejection: a PKCS#1 v1.5 unwrap used to fail at once on
// a bad padding and return a short plaintext as it was, so the caller
// (and an attacker sending chosen EDKs) told the cases apart: a padding
// oracle. Every failure now looks like a wrong key: a random data key and
// no error; the message's key commitment then fails.
func TestPKCS1ImplicitRejection(t *testing.T) {
	ctx := context.Background()
	priv, other := rsaKey(t), rsaKey(t)
	kek, err := rawrsa.New("ns", "k", nil, priv, rawrsa.PKCS1)
	if err != nil {
		t.Fatal(err)
	}
	dek := bytes.Repeat([]byte{7}, 32)
	good, err := rawrsa.PKCS1.Encrypt(&priv.PublicKey, dek)
	if err != nil {
		t.Fatal(err)
	}
	short, _ := rawrsa.PKCS1.Encrypt(&priv.PublicKey, dek[:16])
	wrongKey, _ := rawrsa.PKCS1.Encrypt(&other.PublicKey, dek)
	// Another key's EDK may be above this key's modulus (half of them are):
	// it must fail as quietly as one below it.
	aboveN := new(big.Int).Add(priv.N, big.NewInt(1)).FillBytes(make([]byte, priv.Size()))
	// A number below the modulus that is almost surely not PKCS#1 padded.
	noPad := new(big.Int).Sub(priv.N, big.NewInt(12345)).FillBytes(make([]byte, priv.Size()))

	edk := func(ct []byte) envelope.EncryptedDataKey {
		return envelope.EncryptedDataKey{ProviderID: "ns", ProviderInfo: []byte("k"), Ciphertext: ct}
	}
	got, err := kek.Unwrap(ctx, edk(good), nil)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("valid EDK: %x, %v", got, err)
	}
	for name, ct := range map[string][]byte{"bad padding": noPad, "16-byte key": short, "other key's EDK": wrongKey, "above the modulus": aboveN} {
		a, errA := kek.Unwrap(ctx, edk(ct), nil)
		b, errB := kek.Unwrap(ctx, edk(ct), nil)
		switch {
		case errA != nil || errB != nil:
			t.Errorf("%s: error %v / %v, want none (implicit rejection)", name, errA, errB)
		case len(a) != rawrsa.PKCS1KeySize || len(b) != rawrsa.PKCS1KeySize:
			t.Errorf("%s: %d-byte key, want %d", name, len(a), rawrsa.PKCS1KeySize)
		case bytes.Equal(a, b) || bytes.Equal(a, dek) || bytes.Equal(a, dek[:16]):
			t.Errorf("%s: the key is not fresh random bytes", name)
		}
	}
	// A ciphertext of another length than the key's is public knowledge:
	// an error.
	if _, err := kek.Unwrap(ctx, edk(append(bytes.Clone(good), 0)), nil); err == nil {
		t.Error("ciphertext longer than the key: no error")
	}
	if _, err := kek.Unwrap(ctx, edk(good[1:]), nil); err == nil {
		t.Error("ciphertext shorter than the key: no error")
	}

	// Whole messages: each kind of bad EDK fails as a wrong key does.
	pub, _ := rawrsa.New("ns", "k", &priv.PublicKey, nil, rawrsa.PKCS1)
	msg, err := envelope.Encrypt(ctx, []byte("secret"), keyring(t, pub), envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	orig := h.EDKs[0].Ciphertext
	at := bytes.Index(msg, orig)
	for name, ct := range map[string][]byte{"bad padding": noPad, "16-byte key": short, "other key's EDK": wrongKey, "above the modulus": aboveN} {
		bad := bytes.Clone(msg)
		copy(bad[at:], ct)
		_, _, err := envelope.Decrypt(ctx, bad, keyring(t, kek), envelope.DecryptOptions{})
		if !errors.Is(err, envelope.ErrCommitment) {
			t.Errorf("message with a %s EDK: %v, want ErrCommitment like any wrong key", name, err)
		}
	}
	if pt, _, err := envelope.Decrypt(ctx, msg, keyring(t, kek), envelope.DecryptOptions{}); err != nil || string(pt) != "secret" {
		t.Fatalf("intact message: %q, %v", pt, err)
	}
}

func keyring(t *testing.T, k envelope.KEK) *envelope.Keyring {
	t.Helper()
	kr := envelope.NewKeyring(k)
	return kr
}
