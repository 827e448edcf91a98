package tpm

// Test hooks: what tpm's own tests and benchmarks need from a Device
// beyond the package's API. They exist only in test builds.

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
)

// SRK describes the storage root key loaded on a Device's connection.
type SRK struct {
	// Handle is its handle: PersistentSRK, or a transient handle.
	Handle tpm2.TPMHandle
	// Name is its name, as stored in EDKs and key files.
	Name tpm2.TPM2BName
	// Public is its public area (for salted sessions: tpm2.Salted),
	// checked to hash to Name.
	Public tpm2.TPMTPublic
}

// Do runs fn with the device's connection and SRK, serialized with every
// other call on the device, for TPM commands this package does not wrap.
// fn must flush every handle it creates and must not flush the SRK. If the
// connection was stale, fn may run a second time on a new connection.
func (d *Device) Do(ctx context.Context, fn func(t transport.TPM, srk SRK) error) error {
	return d.run(ctx, func(c *conn) error {
		return fn(c.l, SRK{Handle: c.srk.handle, Name: c.srk.name, Public: c.srk.pub})
	})
}

// HandleCounts says how many transient objects and sessions a TPM holds.
type HandleCounts struct {
	// Transient counts loaded transient objects (including the SRK this
	// process made, unless the persistent one is used).
	Transient int
	// Sessions counts loaded and saved sessions.
	Sessions int
}

// Handles reads how many transient objects and sessions the TPM holds, as
// seen through this process's connection (a resource manager shows only
// this connection's), for leak checks.
func (d *Device) Handles(ctx context.Context) (HandleCounts, error) {
	var hc HandleCounts
	err := d.run(ctx, func(c *conn) error {
		for _, x := range []struct {
			first tpm2.TPMHandle
			n     *int
		}{{0x80000000, &hc.Transient}, {0x02000000, &hc.Sessions}, {0x03000000, &hc.Sessions}} {
			hs, err := listHandles(c.l, x.first)
			if err != nil {
				return err
			}
			*x.n += len(hs)
		}
		return nil
	})
	if err != nil {
		return HandleCounts{}, fmt.Errorf("%s: %w", d.path, err)
	}
	return hc, nil
}

// ExtendPCR extends the SHA-256 bank of PCR pcr with SHA-256(data), as a
// measurement would.
func (d *Device) ExtendPCR(ctx context.Context, pcr int, data []byte) error {
	sum := sha256.Sum256(data)
	err := d.run(ctx, func(c *conn) error {
		_, err := (tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: sum[:]}}},
		}).Execute(c.l)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: TPM2_PCR_Extend %d: %w", d.path, pcr, err)
	}
	return nil
}

// ResetPCR resets a resettable PCR (16 and 23 at locality 0) to zeroes.
func (d *Device) ResetPCR(ctx context.Context, pcr int) error {
	err := d.run(ctx, func(c *conn) error {
		_, err := (tpm2.PCRReset{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)}}).Execute(c.l)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: TPM2_PCR_Reset %d: %w", d.path, pcr, err)
	}
	return nil
}

// WrapLegacyECDH wraps dek to an ECC key in the layout ECC key files wrote
// before the ESDK raw ECDH layout (ProviderECDH): the code Wrap ran then,
// kept only so that tests check such EDKs still open. An ephemeral P-256 key
// on the host, ECDH, HKDF-SHA256, AES-256-GCM with the context as AAD.
func (k *KeyKEK) WrapLegacyECDH(dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	if len(dek) == 0 || len(dek) > maxDEK {
		return envelope.EncryptedDataKey{}, fmt.Errorf("cannot wrap a %d-byte data key (1..%d)", len(dek), maxDEK)
	}
	aad, err := ec.Serialize()
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	z, err := eph.ECDH(k.ecPub)
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("ECDH: %w", err)
	}
	info := &ecdhInfo{name: k.name, ephem: eph.PublicKey().Bytes(), iv: make([]byte, gcmIVLen)}
	key, err := legacyKey(z, info.ephem, k.ecPub.Bytes())
	clear(z)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	defer clear(key)
	if _, err := rand.Read(info.iv); err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	aead, err := gcm(key)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	return envelope.EncryptedDataKey{ProviderID: ProviderECDH, ProviderInfo: info.marshal(), Ciphertext: aead.Seal(nil, info.iv, dek, aad)}, nil
}
