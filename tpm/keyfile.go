package tpm

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/internal/secretfile"
)

// Key types of Generate.
const (
	KeyRSA2048 = "rsa-2048"
	KeyECCP256 = "ecc-p256"
)

// Key file format, version 1: a PEM block of type "HSMENV TPM KEY" whose
// headers are
//
//	Version: 1
//	Type: rsa-2048 | ecc-p256
//	SRK-Name: hex of the SRK's name (hash algorithm u16 + digest)
//	PIN: yes | no
//	PCRs: sha256:0,7                 (only when bound to PCRs)
//	PCR-Values: hex,hex              (their values at creation, same order)
//
// and whose bytes are TPM2B_PUBLIC || TPM2B_PRIVATE of the key (the private
// area is encrypted by the SRK: only that TPM can load it). A "PUBLIC KEY"
// block (SPKI) follows for convenience; it must match the TPM2B_PUBLIC.
const (
	keyFileBlock   = "HSMENV TPM KEY"
	keyFileVersion = "1"
	maxKeyFile     = 64 << 10
)

// keyFile is an asymmetric TPM key as stored on disk.
type keyFile struct {
	keyType string
	obj     object
}

// publicKey returns the key's public half: *rsa.PublicKey or
// *ecdh.PublicKey (P-256).
func (kf *keyFile) publicKey() (crypto.PublicKey, error) {
	return publicKeyOf(kf.obj.public)
}

// publicKeyOf turns an RSA or ECC public area (a key file's, an EK's) into
// a Go public key: *rsa.PublicKey or *ecdh.PublicKey.
func publicKeyOf(pub *tpm2.TPMTPublic) (crypto.PublicKey, error) {
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		parms, err := pub.Parameters.RSADetail()
		if err != nil {
			return nil, err
		}
		n, err := pub.Unique.RSA()
		if err != nil {
			return nil, err
		}
		return tpm2.RSAPub(parms, n)
	case tpm2.TPMAlgECC:
		parms, err := pub.Parameters.ECCDetail()
		if err != nil {
			return nil, err
		}
		pt, err := pub.Unique.ECC()
		if err != nil {
			return nil, err
		}
		return tpm2.ECDHPub(parms, pt)
	}
	return nil, fmt.Errorf("a public area of type %v, neither RSA nor ECC", pub.Type)
}

// marshal encodes the key file.
func (kf *keyFile) marshal() ([]byte, error) {
	h := map[string]string{
		"Version":  keyFileVersion,
		"Type":     kf.keyType,
		"SRK-Name": hex.EncodeToString(kf.obj.srkName),
		"PIN":      "no",
	}
	if kf.obj.policy.pin {
		h["PIN"] = "yes"
	}
	if p := kf.obj.policy; len(p.pcrs) > 0 {
		h["PCRs"] = formatPCRs(p.pcrs)
		vals := make([]string, len(p.values))
		for i, v := range p.values {
			vals[i] = hex.EncodeToString(v)
		}
		h["PCR-Values"] = strings.Join(vals, ",")
	}
	pub, err := kf.publicKey()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: keyFileBlock, Headers: h, Bytes: kf.obj.blob()})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})...), nil
}

// readKeyFile reads and checks a key file. It reads through a size limit
// (maxKeyFile): a path naming a device (/dev/zero), an endless pipe or a
// huge file fails promptly instead of reading forever.
func readKeyFile(path string) (*keyFile, error) {
	b, err := secretfile.Read(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	kf, err := parseKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return kf, nil
}

// parseKeyFile decodes a key file and checks that the key fits its headers.
func parseKeyFile(b []byte) (*keyFile, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != keyFileBlock {
		return nil, fmt.Errorf("%w: no %q PEM block (not made by hsmenv keygen?)", ErrKeyFile, keyFileBlock)
	}
	h := block.Headers
	if v := h["Version"]; v != keyFileVersion {
		return nil, fmt.Errorf("%w: version %q (this hsmenv reads version %s)", ErrKeyFile, v, keyFileVersion)
	}
	for k := range h {
		switch k {
		case "Version", "Type", "SRK-Name", "PIN", "PCRs", "PCR-Values":
		default:
			return nil, fmt.Errorf("%w: unknown header %q", ErrKeyFile, k)
		}
	}
	kf := &keyFile{keyType: h["Type"]}
	if kf.keyType != KeyRSA2048 && kf.keyType != KeyECCP256 {
		return nil, fmt.Errorf("%w: key type %q (%s or %s)", ErrKeyFile, kf.keyType, KeyRSA2048, KeyECCP256)
	}
	var err error
	if kf.obj.srkName, err = hex.DecodeString(h["SRK-Name"]); err != nil || len(kf.obj.srkName) == 0 {
		return nil, fmt.Errorf("%w: SRK-Name %q is not hex", ErrKeyFile, h["SRK-Name"])
	}
	switch h["PIN"] {
	case "yes":
		kf.obj.policy.pin = true
	case "no":
	default:
		return nil, fmt.Errorf("%w: PIN %q (yes or no)", ErrKeyFile, h["PIN"])
	}
	if s, ok := h["PCRs"]; ok {
		p := &kf.obj.policy
		if p.pcrs, err = ParsePCRs(s); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
		}
		vals := strings.Split(h["PCR-Values"], ",")
		if len(vals) != len(p.pcrs) {
			return nil, fmt.Errorf("%w: %d PCR-Values for %d PCRs", ErrKeyFile, len(vals), len(p.pcrs))
		}
		for _, v := range vals {
			d, err := hex.DecodeString(v)
			if err != nil || len(d) != 32 {
				return nil, fmt.Errorf("%w: PCR value %q is not 32 bytes of hex", ErrKeyFile, v)
			}
			p.values = append(p.values, d)
		}
	} else if _, ok := h["PCR-Values"]; ok {
		return nil, fmt.Errorf("%w: PCR-Values without PCRs", ErrKeyFile)
	}
	pubBytes, err := kf.obj.parseBlob(block.Bytes, ErrKeyFile)
	if err != nil {
		return nil, err
	}
	if kf.obj.public, err = parsePublic(pubBytes); err != nil {
		return nil, fmt.Errorf("%w: TPM2B_PUBLIC: %v", ErrKeyFile, err)
	}
	if err := checkKeyPublic(kf.keyType, kf.obj.public); err != nil {
		return nil, err
	}
	if err := checkPublic(kf.obj.head, kf.obj.policy, ErrKeyFile); err != nil {
		return nil, err
	}
	// The public key itself, whether or not a PUBLIC KEY block repeats it:
	// a P-256 point on the curve, a 2048-bit RSA modulus.
	key, err := kf.publicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: the key's public area holds no usable %s public key: %v", ErrKeyFile, kf.keyType, err)
	}
	if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() != 2048 {
		return nil, fmt.Errorf("%w: the key's public area holds a %d-bit RSA modulus, not 2048", ErrKeyFile, k.N.BitLen())
	}
	if block, _ := pem.Decode(rest); block != nil && block.Type == "PUBLIC KEY" {
		spki, err := x509.MarshalPKIXPublicKey(key)
		if err != nil || !bytes.Equal(spki, block.Bytes) {
			return nil, fmt.Errorf("%w: its PUBLIC KEY block is not the key's public key", ErrKeyFile)
		}
	}
	return kf, nil
}

// checkKeyPublic checks that pub is an unrestricted decryption key of the
// type the header names, with the scheme hsmenv uses.
func checkKeyPublic(keyType string, pub *tpm2.TPMTPublic) error {
	a := pub.ObjectAttributes
	if !a.Decrypt || a.Restricted || a.SignEncrypt || !a.SensitiveDataOrigin {
		return fmt.Errorf("%w: the key is not an unrestricted, TPM-generated decryption key", ErrKeyFile)
	}
	switch keyType {
	case KeyRSA2048:
		parms, err := pub.Parameters.RSADetail()
		if pub.Type != tpm2.TPMAlgRSA || err != nil || parms.KeyBits != 2048 || parms.Scheme.Scheme != tpm2.TPMAlgOAEP {
			return fmt.Errorf("%w: Type %s, but the key is not RSA-2048 with OAEP", ErrKeyFile, keyType)
		}
	case KeyECCP256:
		parms, err := pub.Parameters.ECCDetail()
		if pub.Type != tpm2.TPMAlgECC || err != nil || parms.CurveID != tpm2.TPMECCNistP256 {
			return fmt.Errorf("%w: Type %s, but the key is not ECC P-256", ErrKeyFile, keyType)
		}
	}
	return nil
}

// writeKeyFile creates path with b, refusing to replace an existing file.
func writeKeyFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s exists; a key file is never overwritten (remove it first if it is no longer needed)", ErrKeyFile, path)
		}
		return fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%w: writing %s: %v", ErrKeyFile, path, err)
	}
	return nil
}

// publicKeyPEM returns the PEM SPKI of pub.
func publicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdh.PublicKey:
	default:
		return nil, fmt.Errorf("%w: %T is not an RSA or ECDH key", ErrKeyFile, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
