package envelope

import (
	"context"
	"crypto/ecdsa"
)

// DecrypterBufferBytes returns the most memory the job buffers of d's
// pipeline take (tests of the byte bound).
func DecrypterBufferBytes(d *Decrypter) int { return d.p.bufBytes }

// EncrypterBufferBytes is DecrypterBufferBytes for an Encrypter whose
// pipeline has started (0 before).
func EncrypterBufferBytes(e *Encrypter) int {
	if e.p == nil {
		return 0
	}
	return e.p.bufBytes
}

// DeriveKeys exposes the key schedule of a suite for benchmarks.
func DeriveKeys(id SuiteID, dek, messageID []byte) (contentKey, commitKey []byte, err error) {
	s, err := lookupSuite(id)
	if err != nil {
		return nil, nil, err
	}
	return s.deriveKeys(dek, messageID)
}

// KEKs returns the keyring's KEKs (tests build a caching keyring over the
// same ones).
func (k *Keyring) KEKs() []KEK { return k.keks }

// DataKey is what tests see of a keyring's data key: Key aliases the
// plaintext key (so tests can watch it being zeroed).
type DataKey struct {
	Key        []byte
	EDKs       []EncryptedDataKey
	Context    EncryptionContext
	SigningKey *ecdsa.PrivateKey
	dk         *dataKey
}

// Release releases the data key.
func (d *DataKey) Release() { d.dk.Release() }

func exportDataKey(dk *dataKey, err error) (*DataKey, error) {
	if err != nil {
		return nil, err
	}
	return &DataKey{Key: dk.key, EDKs: dk.edks, Context: dk.context, SigningKey: dk.signingKey, dk: dk}, nil
}

// NewDataKey asks the keyring for the data key of a message, as
// NewEncrypter does.
func (k *Keyring) NewDataKey(ctx context.Context, suite SuiteID, ec EncryptionContext, size int64) (*DataKey, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, err
	}
	if err := checkUserContext(ec); err != nil {
		return nil, err
	}
	return exportDataKey(k.newDataKey(ctx, s, ec, nil, size))
}

// OpenDataKey asks the keyring for the data key of EDKs, as the decrypters
// do.
func (k *Keyring) OpenDataKey(ctx context.Context, suite SuiteID, edks []EncryptedDataKey, ec EncryptionContext) (*DataKey, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, err
	}
	return exportDataKey(k.openDataKey(ctx, s, edks, ec))
}

// EncryptionCacheID returns the cache id of an encrypt request (caching-cmm.md
// Appendix A), for the ESDK's test vectors.
func (k *Keyring) EncryptionCacheID(suite SuiteID, ec EncryptionContext) ([]byte, error) {
	id, err := k.cache.encryptID(suite, ec)
	return id[:], err
}

// DecryptionCacheID returns the cache id of a decrypt request.
func (k *Keyring) DecryptionCacheID(suite SuiteID, edks []EncryptedDataKey, ec EncryptionContext) ([]byte, error) {
	id, err := k.cache.decryptID(suite, edks, ec)
	return id[:], err
}

// FramesRead returns how many frames r's reads (and OpenRange) have read
// and authenticated so far.
func (r *RangeReader) FramesRead() int64 { return r.framesRead.Load() }
