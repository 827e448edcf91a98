package tpm

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// DefaultNamespace is the EDK provider id of RSA key-file KEKs (the ESDK raw
// RSA layout), as for the PKCS#11 KEKs: an ESDK producer configured with it,
// the key name and the public key encrypts messages the TPM opens.
const DefaultNamespace = "hsmenv"

// KeyKEK is an asymmetric TPM key saved in a key file: RSA-2048 (EDKs in the
// ESDK raw RSA layout, RSA-OAEP-SHA256) or ECC P-256 (EDKs in the ESDK raw
// ECDH layout, provider id rawecdh.ProviderID; EDKs of the older
// ProviderECDH layout still open). Wrap needs only the public key, no TPM;
// Unwrap loads the key into the TPM, decrypts there (TPM2_RSA_Decrypt, or
// TPM2_ECDH_ZGen with the rest on the host) over a salted session that
// encrypts the result, and flushes it. It is safe for concurrent use.
type KeyKEK struct {
	dev             *Device
	path            string
	kf              *keyFile
	namespace, name string
	pins            *pinCache
	rsaPub          *rsa.PublicKey
	ecPub           *ecdh.PublicKey
	ecSealer        *rawecdh.KEK // the ephemeral-schema keyring to ecPub: Wrap, on the host
	desc            string
}

// OpenKeyFile returns the KEK of a parsed tpm:key-file= URI. It reads the key
// file but does not reach the TPM. PCRs or a PIN in the URI must match the
// key file's. opts give the PIN callback and the default device (see
// Option).
func OpenKeyFile(u *URI, opts ...Option) (*KeyKEK, error) {
	o := collect(opts)
	if u.KeyFile == "" {
		return nil, fmt.Errorf("%w: %s names no key-file", keyuri.ErrSyntax, u)
	}
	kf, err := readKeyFile(u.KeyFile)
	if err != nil {
		return nil, err
	}
	p := kf.obj.policy
	if u.PCRs != nil && formatPCRs(u.PCRs) != formatPCRs(p.pcrs) {
		return nil, fmt.Errorf("%w: the key is bound to %s, the URI says pcrs=%s", ErrKeyFile, p.describe(), formatPCRs(u.PCRs))
	}
	if u.PIN && !p.pin {
		return nil, fmt.Errorf("%w: the URI says pin=yes, but the key has no PIN", ErrKeyFile)
	}
	if err := checkSRKPin(u.SRK, kf.obj.srkName, u.KeyFile+" was made under the"); err != nil {
		return nil, err
	}
	d, err := OpenDevice(o.deviceFor(u.Device))
	if err != nil {
		return nil, err
	}
	k := &KeyKEK{dev: d, path: u.KeyFile, kf: kf, namespace: u.Namespace, name: u.Name}
	if k.name == "" {
		base := filepath.Base(u.KeyFile)
		k.name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	pub, err := kf.publicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, u.KeyFile, err)
	}
	switch kf.keyType {
	case KeyRSA2048:
		if k.namespace == "" {
			k.namespace = DefaultNamespace
		}
		k.rsaPub = pub.(*rsa.PublicKey)
	case KeyECCP256:
		if k.namespace != "" {
			return nil, fmt.Errorf("%w: x-namespace is for RSA keys (ESDK raw RSA layout); ECC EDKs have provider id %s", keyuri.ErrSyntax, rawecdh.ProviderID)
		}
		k.namespace = rawecdh.ProviderID
		k.ecPub = pub.(*ecdh.PublicKey)
		k.ecSealer = rawecdh.NewEphemeral(k.ecPub)
	}
	if err := rawaes.CheckNames(k.namespace, k.name); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, u.KeyFile, err)
	}
	edk := k.namespace + "/" + k.name
	if k.ecPub != nil {
		edk = k.namespace
	}
	k.desc = fmt.Sprintf("tpm:key-file=%s (%s, EDK %s, TPM %s)", u.KeyFile, kf.keyType, edk, d.Path())
	k.pins = newPINCache(u, "tpm:key-file="+u.KeyFile, o)
	return k, nil
}

// String names the KEK in errors (no PIN).
func (k *KeyKEK) String() string { return k.desc }

// Type returns KeyRSA2048 or KeyECCP256.
func (k *KeyKEK) Type() string { return k.kf.keyType }

// Name returns the key name its RSA EDKs carry (the provider info). ECC
// keys' raw ECDH EDKs name the key by its public point instead; the name
// only identifies their legacy ProviderECDH EDKs.
func (k *KeyKEK) Name() string { return k.name }

// Namespace returns the provider id of the EDKs Wrap writes: the namespace
// of an RSA key ("hsmenv" unless x-namespace=), rawecdh.ProviderID for ECC
// keys.
func (k *KeyKEK) Namespace() string { return k.namespace }

// PublicKey returns the public half: *rsa.PublicKey or *ecdh.PublicKey.
func (k *KeyKEK) PublicKey() any {
	if k.rsaPub != nil {
		return k.rsaPub
	}
	return k.ecPub
}

// Device returns the TPM the key lives in.
func (k *KeyKEK) Device() *Device { return k.dev }

// Wrap wraps dek with the public key, on the host: no TPM is needed, and
// ctx is unused. RSA keys write the ESDK raw RSA layout; ECC keys the ESDK
// raw ECDH layout (ephemeral key schema), binding ec.
func (k *KeyKEK) Wrap(ctx context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	var edk envelope.EncryptedDataKey
	var err error
	if k.rsaPub != nil {
		edk, err = k.wrapRSA(dek)
	} else {
		edk, err = k.ecSealer.Wrap(ctx, dek, ec)
	}
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	return edk, nil
}

// Claims reports, without the TPM, whether edk names this key: for RSA
// keys the provider id (namespace) and key name; for ECC keys a raw ECDH
// EDK whose provider info names this key's public point as the recipient,
// or a legacy ProviderECDH EDK with this key's name.
func (k *KeyKEK) Claims(edk envelope.EncryptedDataKey) bool {
	if k.rsaPub != nil {
		return edk.ProviderID == k.namespace && string(edk.ProviderInfo) == k.name
	}
	return k.claimsECDH(edk)
}

// Unwrap decrypts edk in the TPM. ctx bounds the TPM call and is passed to
// the PIN callback, if the key has a PIN and the URI gives none. A malformed
// EDK fails with ErrUnwrap before the TPM or a PIN is involved; a raw ECDH
// EDK that was altered, or opened under another encryption context than the
// one it was made with, fails with ErrUnwrap (and rawecdh.ErrCommitment, or
// rawecdh.ErrMalformed for an altered wrapped key) after TPM2_ECDH_ZGen,
// which succeeds with the right PIN whatever the EDK's point, so such a
// failure never counts towards dictionary-attack lockout.
func (k *KeyKEK) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	e, err := k.parseEDK(edk)
	if err != nil {
		return nil, err
	}
	auth, err := k.auth(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(auth)
	var dek []byte
	if k.rsaPub != nil {
		dek, err = k.unwrapRSA(ctx, edk, auth)
	} else {
		dek, err = k.unwrapECDH(ctx, edk, e, ec, auth)
	}
	if err != nil {
		return nil, err
	}
	return dek, nil
}

// auth returns the auth value of the key's PIN, nil if its policy has
// none. The caller zeroes it.
func (k *KeyKEK) auth(ctx context.Context) ([]byte, error) {
	if !k.kf.obj.policy.pin {
		return nil, nil
	}
	return k.pins.auth(ctx)
}

// ECDH returns the ECDH shared secret of an ECC key's private half and
// peer, a P-256 point: the x-coordinate of the product (32 bytes), computed
// by TPM2_ECDH_ZGen in a salted session with the key's policy satisfied,
// as Unwrap does for raw ECDH EDKs; for protocols other than the ESDK's
// that agree a key with the TPM key (the age plugin's p256tag stanzas).
// ctx bounds the TPM call and goes to the PIN callback if the key has a
// PIN the URI does not give. An RSA key fails with ErrKeyFile. The caller
// zeroes the result.
func (k *KeyKEK) ECDH(ctx context.Context, peer *ecdh.PublicKey) ([]byte, error) {
	if k.ecPub == nil {
		return nil, fmt.Errorf("%w: %s is an RSA key; ECDH needs an ECC key", ErrKeyFile, k)
	}
	if peer == nil || peer.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: %s: the peer key is not a P-256 point", ErrUnwrap, k)
	}
	auth, err := k.auth(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(auth)
	return k.zgen(ctx, peer, auth)
}

// parseEDK checks, before the TPM or a PIN is involved, that edk names this
// key and is well formed: an RSA ciphertext of the key's size, or (ECC
// keys, see parseECDHEDK) a peer point on P-256 and a ciphertext of a data
// key of a size the layout allows, which it returns.
func (k *KeyKEK) parseEDK(edk envelope.EncryptedDataKey) (*eccEDK, error) {
	if k.ecPub != nil {
		return k.parseECDHEDK(edk)
	}
	if !k.Claims(edk) {
		return nil, k.notForKey(edk)
	}
	if len(edk.Ciphertext) != k.rsaPub.Size() {
		return nil, fmt.Errorf("%w: %s: a %d-byte RSA ciphertext, the key needs %d", ErrUnwrap, k, len(edk.Ciphertext), k.rsaPub.Size())
	}
	return nil, nil
}

// notForKey is the error of unwrapping an EDK the key does not claim.
func (k *KeyKEK) notForKey(edk envelope.EncryptedDataKey) error {
	return fmt.Errorf("%w: %s: the EDK (provider id %q) is not for this key", ErrUnwrap, k, edk.ProviderID)
}

// Generate creates an asymmetric key in the TPM under its SRK and writes its
// key file: uri is tpm:key-file=PATH[;pcrs=...][;pin=yes][;srk=HEX]?device=DEV,
// keyType KeyRSA2048 or KeyECCP256. The key only decrypts, never leaves the
// TPM (fixedTPM), and is bound to the URI's PCRs (their current values) and
// PIN. With srk=, a TPM whose SRK has another name is refused
// (ErrDifferentTPM) before anything is created. An existing file is never
// overwritten. For a tpm:seal URI (keyType "" or "seal") nothing is
// generated: it checks that the TPM works and says so. It returns a one-line
// description that names the SRK in full, for srk=. ctx bounds the TPM calls
// and is passed to the PIN callback; opts give that callback (for pin=yes
// without pin-value or pin-source) and the default device (see Option).
func Generate(ctx context.Context, uri, keyType string, opts ...Option) (string, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return "", err
	}
	o := collect(opts)
	if u.Seal {
		return checkSeal(ctx, u, keyType, o)
	}
	var tmpl func(policy) tpm2.TPMTPublic
	if keyType == "ec-p256" {
		keyType = KeyECCP256 // the PKCS#11 side's name for the same curve
	}
	switch keyType {
	case KeyRSA2048:
		tmpl = rsaTemplate
	case KeyECCP256:
		tmpl = eccTemplate
	default:
		return "", fmt.Errorf("%w: key type %q: a TPM key file holds %s or %s (and tpm:seal takes seal)", ErrKeyFile, keyType, KeyRSA2048, KeyECCP256)
	}
	if _, err := os.Lstat(u.KeyFile); err == nil {
		return "", fmt.Errorf("%w: the file exists; a key file is never overwritten", ErrKeyFile)
	}
	d, err := OpenDevice(o.deviceFor(u.Device))
	if err != nil {
		return "", err
	}
	var auth []byte
	if u.PIN {
		if auth, err = newPINCache(u, "new key "+u.KeyFile, o).auth(ctx); err != nil {
			return "", err
		}
		defer clear(auth)
	}
	kf := &keyFile{keyType: keyType}
	err = d.run(ctx, func(c *conn) error {
		if err := checkSRKPin(u.SRK, c.srk.name.Buffer, "the TPM presents the"); err != nil {
			return err
		}
		p, err := newPolicy(c.l, u.PCRs, u.PIN)
		if err != nil {
			return err
		}
		t := tmpl(p)
		sess := c.srk.hmacIn(nil)
		rsp, err := (tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: c.srk.handle, Name: c.srk.name, Auth: sess},
			InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: auth}}},
			InPublic:     tpm2.New2B(t),
			CreationPCR:  p.creationPCR(),
		}).Execute(c.l)
		if err != nil {
			flushSessions(c.l, sess)
			return fmt.Errorf("TPM2_Create (%s key): %w", keyType, err)
		}
		if err := p.checkCreation(&rsp.CreationData); err != nil {
			return err
		}
		pub, err := rsp.OutPublic.Contents()
		if err != nil {
			return fmt.Errorf("%w: the new key's public area: %v", ErrKeyFile, err)
		}
		if err := checkCreated(t, pub); err != nil {
			return err
		}
		kf.obj = object{srkName: c.srk.name.Buffer, pub: rsp.OutPublic, priv: rsp.OutPrivate, public: pub, policy: p}
		kf.obj.head, err = parseHead(rsp.OutPublic.Bytes())
		if err != nil {
			return fmt.Errorf("%w: the new key's public area: %v", ErrKeyFile, err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("keygen on %s: %w", d.Path(), err)
	}
	b, err := kf.marshal()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if err := writeKeyFile(u.KeyFile, b); err != nil {
		return "", err
	}
	k, err := OpenKeyFile(u, opts...)
	if err != nil {
		return "", fmt.Errorf("reading back the new key file: %w", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(k.PublicKey())
	fp := sha256.Sum256(der)
	edk := fmt.Sprintf("EDK provider id %s, key name %s", k.namespace, k.name)
	if k.ecPub != nil {
		edk = "EDKs in the ESDK raw ECDH layout (provider id " + rawecdh.ProviderID + ", curve P-256, recipient = this public key)"
	}
	return fmt.Sprintf("generated TPM %s key %s in %s on %s (%s, fixedTPM, decrypt only); %s; public key SHA-256 %x; SRK name %x (pin it with ;srk=%x)",
		keyType, k.name, u.KeyFile, d.Path(), kf.obj.policy.describe(), edk, fp, kf.obj.srkName, kf.obj.srkName), nil
}

// checkCreated checks that the public area TPM2_Create returned is the
// template asked for, but for the object's own unique field. The Create
// response is authenticated by the salted session's HMAC, so this guards
// against a faulty TPM rather than the link.
func checkCreated(tmpl tpm2.TPMTPublic, pub *tpm2.TPMTPublic) error {
	want := tmpl
	want.Unique = pub.Unique
	if !bytes.Equal(tpm2.Marshal(want), tpm2.Marshal(*pub)) {
		return fmt.Errorf("%w: TPM2_Create returned an object with other attributes, policy or parameters than the template hsmenv sent", ErrTampered)
	}
	return nil
}

// checkSeal is Generate for tpm:seal: there is no key to make (every data
// key is sealed on its own), so it checks that the TPM and its SRK work.
func checkSeal(ctx context.Context, u *URI, keyType string, o options) (string, error) {
	if keyType != "" && keyType != "seal" {
		return "", fmt.Errorf("%w: tpm:seal takes key type \"seal\", not %q", keyuri.ErrSyntax, keyType)
	}
	d, err := OpenDevice(o.deviceFor(u.Device))
	if err != nil {
		return "", err
	}
	name, err := d.SRKName(ctx)
	if err != nil {
		return "", err
	}
	if err := checkSRKPin(u.SRK, name, d.Path()+" presents the"); err != nil {
		return "", err
	}
	var vals [][]byte
	if len(u.PCRs) > 0 {
		if vals, err = d.PCRValues(ctx, u.PCRs); err != nil {
			return "", err
		}
	}
	read := fmt.Sprintf("%d PCR values read", len(vals))
	if len(vals) == 1 {
		read = "1 PCR value read"
	}
	return fmt.Sprintf("tpm:seal needs no key: each data key is sealed to the SRK of %s (%s, %s); SRK name %x (pin it with tpm:seal;srk=%x)",
		d.Path(), policy{pcrs: u.PCRs, pin: u.PIN}.describe(), read, name, name), nil
}

// PublicKeyPEM returns the PEM SubjectPublicKeyInfo ("PUBLIC KEY") of the
// public key in the key file a tpm:key-file= URI names: what an ESDK
// producer needs to encrypt to the TPM (a raw RSA keyring for RSA keys, a raw
// ECDH keyring, ephemeral key schema, curve P-256, for ECC keys; its DER is
// the keyring's recipient public key). No TPM is needed: ctx and opts are
// accepted like Generate's and do not matter.
func PublicKeyPEM(ctx context.Context, uri string, opts ...Option) ([]byte, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	if u.Seal {
		return nil, fmt.Errorf("%w: a sealed key has no public key (only tpm:key-file= keys do)", ErrKeyFile)
	}
	kf, err := readKeyFile(u.KeyFile)
	if err != nil {
		return nil, err
	}
	pub, err := kf.publicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, u.KeyFile, err)
	}
	return publicKeyPEM(pub)
}
