package tpm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// ECC P-256 key files wrap in the ESDK raw ECDH layout (provider id
// rawecdh.ProviderID, the ephemeral key schema): any ESDK 4.x producer with a
// raw ECDH keyring and the key's public half encrypts to the TPM. See
// docs/tpm.md.

// ProviderECDH is the EDK provider id of the layout ECC P-256 key files wrote
// before they wrote the ESDK raw ECDH layout. Unwrap still opens such EDKs;
// Wrap no longer writes them.
//
// Provider info (version 1): version u8 = 1 | u16 length + key name |
// ephemeral public key (65 bytes, uncompressed SEC 1 point) | IV (12).
// Ciphertext: AES-256-GCM of the data key || tag (16), under
// HKDF-SHA256(ikm = Z, the x-coordinate of the ECDH shared point; salt =
// "hsmenv-tpm-ecdh v1"; info = ephemeral point || recipient point, both
// uncompressed), AAD = the serialized encryption context.
const ProviderECDH = "hsmenv-tpm-ecdh"

const (
	legacySalt = "hsmenv-tpm-ecdh v1" // HKDF salt of ProviderECDH EDKs
	ecdhInfoV1 = 1
	pointLen   = 65 // uncompressed P-256 point
	coordLen   = 32 // P-256 field element
	gcmIVLen   = 12
	gcmTagLen  = 16
	// rawECDHOverhead is what a raw ECDH EDK ciphertext adds to the data
	// key: salt (32), commitment key (32), GCM tag (16).
	rawECDHOverhead = 32 + 32 + gcmTagLen
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

// eccEDK is an ECC key-file EDK that parseEDK checked: peer is the point the
// TPM multiplies by its key (the raw ECDH sender, or the legacy ephemeral
// key); exactly one of raw and legacy is set.
type eccEDK struct {
	peer   *ecdh.PublicKey
	raw    *rawecdh.Info
	legacy *ecdhInfo
}

// claimsECDH reports whether edk is a raw ECDH EDK to this key (its provider
// info names this key's public point as the recipient) or a legacy EDK with
// this key's name.
func (k *KeyKEK) claimsECDH(edk envelope.EncryptedDataKey) bool {
	switch edk.ProviderID {
	case rawecdh.ProviderID:
		info, err := rawecdh.ParseInfo(edk.ProviderInfo)
		return err == nil && info.Recipient.Equal(k.ecPub)
	case ProviderECDH:
		info, err := parseECDHInfo(edk.ProviderInfo)
		return err == nil && info.name == k.name
	}
	return false
}

// parseECDHEDK checks, before the TPM or a PIN is involved, that edk is an
// EDK claimsECDH accepts, with the peer point on P-256 and a ciphertext that
// holds a data key of 16, 24 or 32 bytes (raw ECDH, as rawecdh.Open
// requires) or 1..maxDEK bytes (legacy). It parses the provider info once
// (claimsECDH would parse it again).
func (k *KeyKEK) parseECDHEDK(edk envelope.EncryptedDataKey) (*eccEDK, error) {
	switch edk.ProviderID {
	case rawecdh.ProviderID:
	case ProviderECDH:
		return k.parseLegacyEDK(edk)
	default:
		return nil, k.notForKey(edk)
	}
	info, err := rawecdh.ParseInfo(edk.ProviderInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnwrap, k, err)
	}
	if !info.Recipient.Equal(k.ecPub) {
		return nil, k.notForKey(edk)
	}
	if n := len(edk.Ciphertext) - rawECDHOverhead; n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%w: %s: a %d-byte raw ECDH ciphertext; it is %d bytes + a 16-, 24- or 32-byte data key", ErrUnwrap, k, len(edk.Ciphertext), rawECDHOverhead)
	}
	return &eccEDK{peer: info.Sender, raw: info}, nil
}

// parseLegacyEDK is parseECDHEDK for ProviderECDH EDKs.
func (k *KeyKEK) parseLegacyEDK(edk envelope.EncryptedDataKey) (*eccEDK, error) {
	info, err := parseECDHInfo(edk.ProviderInfo)
	if err != nil {
		return nil, err
	}
	if info.name != k.name {
		return nil, k.notForKey(edk)
	}
	eph, err := ecdh.P256().NewPublicKey(info.ephem)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the ephemeral public key is not a P-256 point: %v", ErrUnwrap, k, err)
	}
	if n := len(edk.Ciphertext) - gcmTagLen; n < 1 || n > maxDEK {
		return nil, fmt.Errorf("%w: %s: a %d-byte AES-GCM ciphertext holds no data key of 1..%d bytes", ErrUnwrap, k, len(edk.Ciphertext), maxDEK)
	}
	return &eccEDK{peer: eph, legacy: info}, nil
}

// unwrapECDH computes Z with TPM2_ECDH_ZGen (the TPM key times the peer
// point of e, which parseECDHEDK checked) and opens the data key on the
// host: rawecdh.Open for raw ECDH EDKs, HKDF and AES-GCM for legacy ones.
func (k *KeyKEK) unwrapECDH(ctx context.Context, edk envelope.EncryptedDataKey, e *eccEDK, ec envelope.EncryptionContext, auth []byte) ([]byte, error) {
	z, err := k.zgen(ctx, e.peer, auth)
	if err != nil {
		return nil, err
	}
	defer clear(z)
	if e.raw != nil {
		dek, err := rawecdh.Open(z, e.raw, edk, ec)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnwrap, k, err)
		}
		return dek, nil
	}
	return k.openLegacy(z, edk, e.legacy, ec)
}

// zgen returns Z, the x-coordinate of the TPM key times peer, at field
// length: TPM2_ECDH_ZGen in a salted session that encrypts the response,
// with the key's policy satisfied (auth is the PIN's auth value, if any).
func (k *KeyKEK) zgen(ctx context.Context, peer *ecdh.PublicKey, auth []byte) ([]byte, error) {
	raw := peer.Bytes() // 04 X Y
	in := tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: raw[1 : 1+coordLen]}, Y: tpm2.TPM2BECCParameter{Buffer: raw[1+coordLen:]}}
	z := make([]byte, coordLen)
	err := k.dev.run(ctx, func(c *conn) error {
		return c.use(&k.kf.obj, "the key", auth, k.pins, ErrUnwrap, func(h tpm2.AuthHandle) error {
			rsp, err := (tpm2.ECDHZGen{KeyHandle: h, InPoint: tpm2.New2B(in)}).Execute(c.l)
			if err != nil {
				return err
			}
			out, err := rsp.OutPoint.Contents()
			if err != nil {
				return fmt.Errorf("%w: ECDH_ZGen output: %v", ErrUnwrap, err)
			}
			defer clear(out.X.Buffer)
			defer clear(out.Y.Buffer)
			if len(out.X.Buffer) > coordLen {
				return fmt.Errorf("%w: ECDH_ZGen returned a %d-byte x-coordinate, P-256 has %d", ErrUnwrap, len(out.X.Buffer), coordLen)
			}
			clear(z)
			copy(z[coordLen-len(out.X.Buffer):], out.X.Buffer) // the TPM may strip leading zero bytes
			return nil
		})
	})
	if err != nil {
		clear(z)
		return nil, err
	}
	return z, nil
}

// ecdhInfo is the parsed provider info of a legacy (ProviderECDH) EDK.
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

// legacyKey derives the AES-256 key of a legacy EDK from the shared
// x-coordinate z.
func legacyKey(z, ephem, recipient []byte) ([]byte, error) {
	info := make([]byte, 0, 2*pointLen)
	info = append(append(info, ephem...), recipient...)
	return hkdf.Key(sha256.New, z, []byte(legacySalt), string(info), 32)
}

// gcm returns AES-GCM under key.
func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// openLegacy opens a legacy EDK with the shared x-coordinate z.
func (k *KeyKEK) openLegacy(z []byte, edk envelope.EncryptedDataKey, info *ecdhInfo, ec envelope.EncryptionContext) ([]byte, error) {
	aad, err := ec.Serialize()
	if err != nil {
		return nil, err
	}
	key, err := legacyKey(z, info.ephem, k.ecPub.Bytes())
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
