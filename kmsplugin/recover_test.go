package kmsplugin_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/kmsplugin"
	"github.com/hsmenv/hsmenv/resolver"
)

// storedValue builds what kube-apiserver stores for plaintext under etcdKey
// with a seed the plugin wrapped (ct), following k8s.io/apiserver v0.37's
// KMS v2 transformer (its real output is checked in interop/kubernetes).
func storedValue(t testing.TB, seed, ct, plaintext []byte, etcdKey string) []byte {
	t.Helper()
	info := make([]byte, 32)
	rand.Read(info)
	key, err := hkdf.Expand(sha256.New, seed, string(info), 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	data := append(append(info, nonce...), aead.Seal(nil, nonce, plaintext, []byte(etcdKey))...)
	b := []byte("k8s:enc:kms:v2:hsmenv:")
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, data)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "hsmenv-test")
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, ct)
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

func TestRecover(t *testing.T) {
	_, uris := keys(t, "aes-256", "ec-p256")
	ctx := context.Background()
	p, _ := newPlugin(t, kmsplugin.Config{Keys: uris})
	seed := make([]byte, 32)
	rand.Read(seed)
	ct, err := p.Encrypt(ctx, "", seed)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("k8s\x00 a Secret's protobuf")
	stored := storedValue(t, seed, ct.Ciphertext, secret, "/registry/secrets/default/db")
	kek, err := resolver.OpenKEK(ctx, uris[1], resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(kek)
	got, err := kmsplugin.Recover(ctx, stored, "/registry/secrets/default/db", kr)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("recover: %q, %v", got, err)
	}
	if _, err := kmsplugin.Recover(ctx, stored, "/registry/secrets/default/other", kr); err == nil {
		t.Fatal("recovered under another etcd key")
	}
	for name, bad := range map[string][]byte{
		"no prefix":   stored[3:],
		"truncated":   stored[:len(stored)-3],
		"flipped":     flip(stored, len(stored)-40),
		"no provider": []byte("k8s:enc:kms:v2::"),
		"empty":       nil,
	} {
		if got, err := kmsplugin.Recover(ctx, bad, "/registry/secrets/default/db", kr); err == nil || got != nil {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if _, err := kmsplugin.ParseStored([]byte("k8s:enc:aescbc:v1:k:")); !errors.Is(err, kmsplugin.ErrStored) {
		t.Errorf("aescbc value: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// FuzzParseStored: no panic, and what parses has a ciphertext and data.
func FuzzParseStored(f *testing.F) {
	f.Add(storedValue(f, make([]byte, 32), []byte{2, 1}, []byte("x"), "/k"))
	f.Add([]byte("k8s:enc:kms:v2:a:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := kmsplugin.ParseStored(b)
		if err == nil && (len(o.Ciphertext) == 0 || len(o.EncryptedData) == 0 || o.Provider == "") {
			t.Fatalf("parsed %+v", o)
		}
	})
}
