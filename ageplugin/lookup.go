package ageplugin

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"

	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/resolver"
)

// Lookup opens the key uri names and returns the Key its identity carries:
// with the public key for a P-256 EC key in a token or a TPM, else the URI
// alone, after a test wrap that shows the KEK can wrap an age file key (for
// symmetric keys and tpm:seal this reaches the device, and may need the
// PIN). ctx bounds the device calls and goes to o.PIN.
func Lookup(ctx context.Context, uri string, o resolver.Options) (Key, error) {
	if err := CheckURI(uri); err != nil {
		return Key{}, err
	}
	kek, err := resolver.OpenKEK(ctx, uri, o)
	if err != nil {
		return Key{}, err
	}
	if _, ok := kek.(ecdhKey); ok {
		if pub, _ := resolver.PublicKeyOf(kek).(*ecdh.PublicKey); pub != nil && pub.Curve() == ecdh.P256() {
			return Key{URI: uri, P256: pub}, nil
		}
	}
	fileKey := make([]byte, fileKeyLen)
	defer clear(fileKey)
	rand.Read(fileKey)
	if _, err := kek.Wrap(ctx, fileKey, StanzaContext); err != nil {
		return Key{}, keyuri.Wrap(uri, fmt.Errorf("cannot wrap an age file key: %w", err))
	}
	return Key{URI: uri}, nil
}
