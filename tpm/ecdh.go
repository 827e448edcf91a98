package tpm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
)

// ProviderECDH is the EDK provider id of ECC P-256 key-file KEKs.
//
// Provider info (version 1): version u8 = 1 | u16 length + key name |
// ephemeral public key (65 bytes, uncompressed SEC 1 point) | IV (12).
// Ciphertext: AES-256-GCM of the data key || tag (16), under
// HKDF-SHA256(ikm = Z, the x-coordinate of the ECDH shared point; salt =
// ECDHSalt; info = ephemeral point || recipient point, both uncompressed),
// AAD = the serialized encryption context. See docs/tpm.md.
const ProviderECDH = "hsmenv-tpm-ecdh"

// ECDHSalt is the HKDF salt of ECDH EDKs.
const ECDHSalt = "hsmenv-tpm-ecdh v1"

const (
	ecdhInfoV1 = 1
	pointLen   = 65
	gcmIVLen   = 12
	gcmTagLen  = 16
)

// eccTemplate is the public area of an ECC P-256 ECDH key with policy p.
func eccTemplate(p policy) tpm2.TPMTPublic {
	digest := p.digest()
	return tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: keyAttributes(p),
		AuthPolicy:       tpm2.TPM2BDigest{Buffer: digest},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDH,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDH, &tpm2.TPMSKeySchemeECDH{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// ecdhInfo is the parsed provider info of an ECDH EDK.
type ecdhInfo struct {
	name  string
	ephem []byte // uncompressed point
	iv    []byte
}

func (i *ecdhInfo) marshal() []byte {
	b := []byte{ecdhInfoV1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(i.name)))
	b = append(b, i.name...)
	b = append(b, i.ephem...)
	return append(b, i.iv...)
}

func parseECDHInfo(b []byte) (*ecdhInfo, error) {
	if len(b) < 3 || b[0] != ecdhInfoV1 {
		return nil, fmt.Errorf("%w: %s provider info: not version %d", ErrUnwrap, ProviderECDH, ecdhInfoV1)
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	b = b[3:]
	if len(b) != n+pointLen+gcmIVLen {
		return nil, fmt.Errorf("%w: %s provider info: %d bytes after the name length %d", ErrUnwrap, ProviderECDH, len(b), n)
	}
	return &ecdhInfo{name: string(b[:n]), ephem: b[n : n+pointLen], iv: b[n+pointLen:]}, nil
}

// ecdhKey derives the AES-256 key from the shared x-coordinate z.
func ecdhKey(z, ephem, recipient []byte) ([]byte, error) {
	info := make([]byte, 0, 2*pointLen)
	info = append(append(info, ephem...), recipient...)
	return hkdf.Key(sha256.New, z, []byte(ECDHSalt), string(info), 32)
}

// gcm returns AES-GCM under key.
func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// wrapECDH wraps dek to the key's public point: an ephemeral P-256 key on
// the host, ECDH, HKDF-SHA256, AES-256-GCM with the context as AAD.
func (k *KeyKEK) wrapECDH(dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
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
	key, err := ecdhKey(z, info.ephem, k.ecPub.Bytes())
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

// unwrapECDH computes Z with TPM2_ECDH_ZGen (the TPM key times the
// ephemeral point eph of info, both checked by parseEDK), then derives the
// key and opens the data key on the host.
func (k *KeyKEK) unwrapECDH(ctx context.Context, edk envelope.EncryptedDataKey, info *ecdhInfo, eph *ecdh.PublicKey, ec envelope.EncryptionContext, auth []byte) ([]byte, error) {
	aad, err := ec.Serialize()
	if err != nil {
		return nil, err
	}
	raw := eph.Bytes()
	in := tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]}}
	var z []byte
	err = k.dev.run(ctx, func(c *conn) error {
		return c.use(&k.kf.obj, k.desc, auth, k.pins, ErrUnwrap, func(h tpm2.AuthHandle) error {
			rsp, err := (tpm2.ECDHZGen{KeyHandle: h, InPoint: tpm2.New2B(in)}).Execute(c.l)
			if err != nil {
				return err
			}
			out, err := rsp.OutPoint.Contents()
			if err != nil {
				return fmt.Errorf("%w: ECDH_ZGen output: %v", ErrUnwrap, err)
			}
			z = append([]byte(nil), out.X.Buffer...)
			clear(out.X.Buffer)
			clear(out.Y.Buffer)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(z) < 32 { // the TPM may strip leading zero bytes
		padded := make([]byte, 32)
		copy(padded[32-len(z):], z)
		clear(z)
		z = padded
	}
	key, err := ecdhKey(z, info.ephem, k.ecPub.Bytes())
	clear(z)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, info.iv, edk.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: AES-GCM failed: the EDK or the encryption context was altered, or the EDK is for another key of the same name", ErrUnwrap, k)
	}
	return dek, nil
}
