package kmsplugin

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hsmenv/hsmenv/envelope"
)

// The layout kube-apiserver (k8s.io/apiserver v0.37, the KMS v2 envelope
// transformer) stores in etcd, which Recover reads:
//
//	"k8s:enc:kms:v2:" PROVIDER-NAME ":" EncryptedObject (protobuf)
//
// EncryptedObject: 1 encryptedData (bytes), 2 keyID (string),
// 3 encryptedDEKSource (bytes: this plugin's ciphertext of the seed),
// 4 annotations (map), 5 encryptedDEKSourceType (enum: 1 =
// HKDF_SHA256_XNONCE_AES_GCM_SEED, 0 = AES_GCM_KEY, the DEK itself).
// With a seed, encryptedData = info (32) || nonce (12) || AES-256-GCM
// ciphertext and tag, under DEK = HKDF-Expand(SHA-256, seed, info, 32), with
// the object's etcd key as additional data.
const (
	storedPrefix     = "k8s:enc:kms:v2:"
	sourceAESGCMKey  = 0
	sourceHKDFSeed   = 1
	infoLen          = 32
	gcmNonceLen      = 12
	maxStoredObject  = 64 << 20 // bounds what Recover parses
	maxProviderName  = 256
	derivedKeyLength = 32
)

// ErrStored reports a stored value that is not a KMS v2 envelope.
var ErrStored = errors.New("not a KMS v2 stored value")

// StoredObject is a parsed KMS v2 value as etcd holds it.
type StoredObject struct {
	Provider      string // the EncryptionConfiguration provider's name
	KeyID         string
	EncryptedData []byte
	Ciphertext    []byte // encryptedDEKSource: the plugin's ciphertext
	SeedSource    bool   // the plaintext of Ciphertext is a seed, not the DEK
}

// ParseStored parses a value kube-apiserver stored with a KMS v2 provider.
func ParseStored(b []byte) (*StoredObject, error) {
	if len(b) > maxStoredObject {
		return nil, fmt.Errorf("%w: %d bytes", ErrStored, len(b))
	}
	if !bytes.HasPrefix(b, []byte(storedPrefix)) {
		return nil, fmt.Errorf("%w: no %q prefix", ErrStored, storedPrefix)
	}
	rest := b[len(storedPrefix):]
	i := bytes.IndexByte(rest[:min(len(rest), maxProviderName+1)], ':')
	if i < 1 {
		return nil, fmt.Errorf("%w: no provider name after the prefix", ErrStored)
	}
	o := &StoredObject{Provider: string(rest[:i])}
	rest = rest[i+1:]
	source := int64(sourceAESGCMKey)
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", ErrStored, protowire.ParseError(n))
		}
		rest = rest[n:]
		switch {
		case (num == 1 || num == 2 || num == 3) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(rest)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", ErrStored, num, protowire.ParseError(n))
			}
			switch num {
			case 1:
				o.EncryptedData = v
			case 2:
				o.KeyID = string(v)
			case 3:
				o.Ciphertext = v
			}
			rest = rest[n:]
		case num == 5 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(rest)
			if n < 0 {
				return nil, fmt.Errorf("%w: field 5: %v", ErrStored, protowire.ParseError(n))
			}
			source = int64(v)
			rest = rest[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, rest)
			if n < 0 {
				return nil, fmt.Errorf("%w: field %d: %v", ErrStored, num, protowire.ParseError(n))
			}
			rest = rest[n:]
		}
	}
	switch source {
	case sourceHKDFSeed:
		o.SeedSource = true
	case sourceAESGCMKey:
	default:
		return nil, fmt.Errorf("%w: DEK source type %d", ErrStored, source)
	}
	if len(o.Ciphertext) == 0 || len(o.EncryptedData) == 0 {
		return nil, fmt.Errorf("%w: no encrypted DEK source or no data", ErrStored)
	}
	return o, nil
}

// Recover decrypts a value kube-apiserver stored in etcd under etcdKey
// (e.g. /registry/secrets/default/db-password, the additional data the
// apiserver binds), with a keyring holding any of the keys that wrapped its
// seed, without a cluster: the seed is opened as Decrypt would (the seed
// context required), the DEK derived as the apiserver does, and the
// object's storage encoding (for most resources, Kubernetes protobuf)
// returned. ctx bounds the device work.
func Recover(ctx context.Context, stored []byte, etcdKey string, kr *envelope.Keyring) ([]byte, error) {
	o, err := ParseStored(stored)
	if err != nil {
		return nil, err
	}
	if len(o.Ciphertext) > MaxCiphertext {
		return nil, fmt.Errorf("%w: a %d-byte DEK source ciphertext", ErrStored, len(o.Ciphertext))
	}
	seed, _, err := envelope.Decrypt(ctx, o.Ciphertext, kr, envelope.DecryptOptions{RequiredContext: seedContext(), MaxEncryptedDataKeys: maxEDKs})
	if err != nil {
		return nil, fmt.Errorf("opening the seed: %w", err)
	}
	defer clear(seed)
	data, key := o.EncryptedData, seed
	if o.SeedSource {
		if len(data) < infoLen {
			return nil, fmt.Errorf("%w: %d bytes of data, shorter than the KDF info", ErrStored, len(data))
		}
		key, err = hkdf.Expand(sha256.New, seed, string(data[:infoLen]), derivedKeyLength)
		if err != nil {
			return nil, err
		}
		defer clear(key)
		data = data[infoLen:]
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: a %d-byte DEK", ErrStored, len(key))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(data) < gcmNonceLen+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes of data", ErrStored, len(data))
	}
	pt, err := aead.Open(nil, data[:gcmNonceLen], data[gcmNonceLen:], []byte(etcdKey))
	if err != nil {
		return nil, fmt.Errorf("the data does not decrypt under the seed's key: is %q the object's etcd key? (%v)", etcdKey, err)
	}
	return pt, nil
}
