package tpm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// ProviderEK is the EDK provider id of data keys sealed to a TPM's
// endorsement key from another machine (tpm:ek=PEMFILE).
//
// Provider info: as tpm:seal's (version 1 | flags | u16 length + the EK's
// name | PCR count | index, SHA-256 value per PCR), flag 2 = an ECC P-256
// EK (else RSA-2048). Ciphertext: TPM2B_PUBLIC (the sealed data object) ||
// TPM2B_PRIVATE (its duplicate: the TPM2_Import outer wrapper, no inner
// one) || TPM2B_ENCRYPTED_SECRET (the import seed, encrypted to the EK).
const ProviderEK = "hsmenv-tpm-ek"

const flagECCEK = 2

// ErrEKCert reports an EK certificate that does not verify against the
// given CA, or a PEM file that holds no EK.
var ErrEKCert = errors.New("TPM EK certificate")

// EK NV indexes of the TCG EK Credential Profile (low range).
const (
	nvRSAEKCert tpm2.TPMHandle = 0x01c00002
	nvECCEKCert tpm2.TPMHandle = 0x01c0000a
)

// EKKEK seals data keys to one TPM's endorsement key. Made from the EK's
// public key (tpm:ek=PEMFILE), it needs no TPM: Wrap builds a duplication
// blob that only that TPM can import (TPM2_Import), bound to literal PCR
// values if asked. Made on the device (tpm:ek), it unwraps: Import, Load
// and Unseal under the EK, salted with the EK and with the response
// encrypted, and refuses EDKs sealed to another EK. It is safe for
// concurrent use.
type EKKEK struct {
	ekPub  *tpm2.TPMTPublic // nil on the device until read
	ekName []byte
	ecc    bool
	policy policy // the PCR values new EDKs are bound to
	dev    *Device
	desc   string
}

// ekPublic builds the TPM public area of an EK from its public key: the
// TCG RSA-2048 or ECC P-256 EK template with the key as its unique field.
func ekPublic(pub any) (*tpm2.TPMTPublic, bool, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return nil, false, fmt.Errorf("%w: an RSA EK must be RSA-2048 with exponent 65537", ErrEKCert)
		}
		t := tpm2.RSAEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})
		return &t, false, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, false, fmt.Errorf("%w: an ECC EK must be on P-256", ErrEKCert)
		}
		point, err := k.Bytes() // 04 || X || Y
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrEKCert, err)
		}
		t := tpm2.ECCEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: point[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: point[33:]},
		})
		return &t, true, nil
	}
	return nil, false, fmt.Errorf("%w: the EK is neither RSA nor ECDSA/ECDH P-256", ErrEKCert)
}

// ReadEKFile reads an EK public key or EK certificate (PEM). With caFile,
// the file must be a certificate that chains to a certificate in caFile
// (the TPM manufacturer's CA, with any intermediates after the EK
// certificate in the same file).
func ReadEKFile(path, caFile string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEKCert, err)
	}
	var certs []*x509.Certificate
	var pub any
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			c, err := parseEKCert(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrEKCert, path, err)
			}
			certs = append(certs, c)
		case "PUBLIC KEY":
			if pub, err = x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrEKCert, path, err)
			}
		}
	}
	if len(certs) > 0 {
		pub = certs[0].PublicKey
	}
	if pub == nil {
		return nil, fmt.Errorf("%w: %s holds no PEM PUBLIC KEY or CERTIFICATE (make it with hsmenv tpm ek)", ErrEKCert, path)
	}
	if caFile == "" {
		return pub, nil
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: ca= needs the EK certificate (hsmenv tpm ek --cert), %s holds only a public key", ErrEKCert, path)
	}
	cab, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEKCert, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cab) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrEKCert, caFile)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: %s does not chain to a CA in %s: %v", ErrEKCert, path, caFile, err)
	}
	return pub, nil
}

// oidSubjectAltName is the SAN extension: EK certificates carry the TPM's
// manufacturer, model and version in it as directory names and mark it
// critical (with an empty subject), which Go's verifier does not handle.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// parseEKCert parses an EK certificate and accepts its critical SAN: it
// only names the TPM (TCG EK Credential Profile), and hsmenv trusts the
// key through the chain, not through the name.
func parseEKCert(der []byte) (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.UnhandledCriticalExtensions = slices.DeleteFunc(c.UnhandledCriticalExtensions, func(o asn1.ObjectIdentifier) bool {
		return o.Equal(oidSubjectAltName)
	})
	return c, nil
}

// parseEKPCRs reads the PCR binding of tpm:ek=: pcrs=sha256:16,7 with the
// values from values (a file of "INDEX=HEX" lines, or the output of
// tpm2_pcrread), or literal values in the attribute itself
// (pcrs=sha256:16=HEX,7=HEX).
func parseEKPCRs(spec, valuesFile string) (policy, error) {
	if spec == "" {
		if valuesFile != "" {
			return policy{}, fmt.Errorf("%w: tpm:ek: pcr-values= without pcrs=", keyuri.ErrSyntax)
		}
		return policy{}, nil
	}
	bank, list, ok := strings.Cut(spec, ":")
	if !ok {
		bank, list = "sha256", spec
	}
	if !strings.EqualFold(bank, "sha256") {
		return policy{}, fmt.Errorf("%w: pcrs=%q: only the sha256 bank is supported", keyuri.ErrSyntax, spec)
	}
	values := map[int][]byte{}
	var idx []string
	for _, f := range strings.Split(list, ",") {
		n, v, hasValue := strings.Cut(strings.TrimSpace(f), "=")
		idx = append(idx, n)
		if hasValue {
			pcr, err := strconv.Atoi(n)
			if err != nil {
				return policy{}, fmt.Errorf("%w: pcrs=%q: %q is not a PCR index", keyuri.ErrSyntax, spec, n)
			}
			if values[pcr], err = pcrValue(v); err != nil {
				return policy{}, fmt.Errorf("%w: pcrs=%q: PCR %d: %v", keyuri.ErrSyntax, spec, pcr, err)
			}
		}
	}
	pcrs, err := ParsePCRs("sha256:" + strings.Join(idx, ","))
	if err != nil {
		return policy{}, err
	}
	if valuesFile != "" {
		fromFile, err := readPCRValues(valuesFile)
		if err != nil {
			return policy{}, err
		}
		for pcr, v := range fromFile {
			if _, ok := values[pcr]; !ok {
				values[pcr] = v
			}
		}
	}
	p := policy{pcrs: pcrs}
	for _, pcr := range pcrs {
		v, ok := values[pcr]
		if !ok {
			return policy{}, fmt.Errorf("%w: tpm:ek: no value for PCR %d: give pcrs=sha256:%d=HEX or pcr-values=FILE (the device's tpm2_pcrread output, or INDEX=HEX lines)", keyuri.ErrSyntax, pcr, pcr)
		}
		p.values = append(p.values, v)
	}
	return p, nil
}

// pcrValue parses a SHA-256 PCR value in hex, with or without 0x.
func pcrValue(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	v, err := hex.DecodeString(s)
	if err != nil || len(v) != sha256.Size {
		return nil, fmt.Errorf("not a SHA-256 value in hex (64 digits)")
	}
	return v, nil
}

// ReadPCRValues reads the SHA-256 values of pcrs, in their order, from a
// file of "INDEX=HEX" lines or tpm2_pcrread's output.
func ReadPCRValues(path string, pcrs []int) ([][]byte, error) {
	all, err := readPCRValues(path)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(pcrs))
	for i, pcr := range pcrs {
		v, ok := all[pcr]
		if !ok {
			return nil, fmt.Errorf("%w: pcr-values %s has no SHA-256 value for PCR %d", keyuri.ErrSyntax, path, pcr)
		}
		out[i] = v
	}
	return out, nil
}

// readPCRValues reads "INDEX=HEX" lines, or tpm2_pcrread's output (its
// sha256: section, "  INDEX : 0xHEX" lines).
func readPCRValues(path string) (map[int][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pcr-values: %v", keyuri.ErrSyntax, err)
	}
	out := map[int][]byte{}
	bank := "sha256"
	for i, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasSuffix(t, ":") && !strings.ContainsAny(t, "=") {
			bank = strings.ToLower(strings.TrimSuffix(t, ":"))
			continue
		}
		n, v, ok := strings.Cut(t, "=")
		if !ok {
			n, v, ok = strings.Cut(t, ":")
		}
		if !ok {
			return nil, fmt.Errorf("%w: pcr-values %s line %d: want INDEX=HEX", keyuri.ErrSyntax, path, i+1)
		}
		if bank != "sha256" {
			continue
		}
		pcr, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || pcr < 0 || pcr > maxPCR {
			return nil, fmt.Errorf("%w: pcr-values %s line %d: %q is not a PCR index", keyuri.ErrSyntax, path, i+1, strings.TrimSpace(n))
		}
		if out[pcr], err = pcrValue(v); err != nil {
			return nil, fmt.Errorf("%w: pcr-values %s line %d: %v", keyuri.ErrSyntax, path, i+1, err)
		}
	}
	return out, nil
}

// openEK returns the KEK of a tpm:ek URI: from the PEM file (encrypt only,
// no TPM), or on the device.
func openEK(u *URI, opts ...Option) (*EKKEK, error) {
	p, err := parseEKPCRs(u.ekPCRs, u.PCRValues)
	if err != nil {
		return nil, err
	}
	if p.authority, p.signed, err = authorityOf(u); err != nil {
		return nil, err
	}
	if u.EK != "" {
		pub, err := ReadEKFile(u.EK, u.CA)
		if err != nil {
			return nil, err
		}
		ekPub, ecc, err := ekPublic(pub)
		if err != nil {
			return nil, err
		}
		name, err := tpm2.ObjectName(ekPub)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEKCert, err)
		}
		return &EKKEK{ekPub: ekPub, ekName: name.Buffer, ecc: ecc, policy: p, desc: "tpm:ek=" + u.EK + " (EK " + shortName(name.Buffer) + ")"}, nil
	}
	o := collect(opts)
	d, err := OpenDevice(o.deviceFor(u.Device))
	if err != nil {
		return nil, err
	}
	return &EKKEK{dev: d, policy: p, desc: "tpm:ek?device=" + d.Path()}, nil
}

// String names the KEK in errors.
func (k *EKKEK) String() string { return k.desc }

// Claims reports whether edk is sealed to an EK: on the device, whether
// it is to this TPM's shows in Unwrap ("sealed to another TPM").
func (k *EKKEK) Claims(edk envelope.EncryptedDataKey) bool {
	if edk.ProviderID != ProviderEK {
		return false
	}
	if k.dev != nil {
		return true
	}
	_, parent, _, err := parseParentPolicy(edk.ProviderInfo, flagECCEK, ProviderEK)
	return err == nil && bytes.Equal(parent, k.ekName)
}

// Wrap seals dek to the EK as a duplication blob (TPM2_Import format),
// on the host: from a PEM file no TPM is involved; on the device the EK's
// public area is read first (ctx bounds that).
func (k *EKKEK) Wrap(ctx context.Context, dek []byte, _ envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	if len(dek) == 0 || len(dek) > maxDEK {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: cannot seal a %d-byte data key (1..%d)", k, len(dek), maxDEK)
	}
	ekPub, ekName, ecc := k.ekPub, k.ekName, k.ecc
	if ekPub == nil {
		err := k.dev.run(ctx, func(c *conn) error {
			ek, err := createEK(c.l, false)
			if err != nil {
				return err
			}
			defer flushHandle(c.l, ek.handle)
			ekPub, ekName = &ek.pub, ek.name.Buffer
			return nil
		})
		if err != nil {
			return envelope.EncryptedDataKey{}, err
		}
	}
	obfuscation := make([]byte, 32)
	if _, err := rand.Read(obfuscation); err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	unique := sha256.New()
	unique.Write(obfuscation)
	unique.Write(dek)
	pub := tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		// Imported objects cannot be fixedTPM or fixedParent; the outer
		// wrapper is what binds this one to the EK.
		ObjectAttributes: tpm2.TPMAObject{UserWithAuth: k.policy.empty(), NoDA: true},
		AuthPolicy:       tpm2.TPM2BDigest{Buffer: k.policy.digest()},
		Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		Unique:           tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: unique.Sum(nil)}),
	}
	name, err := tpm2.ObjectName(&pub)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	sensitive := tpm2.Marshal(tpm2.TPMTSensitive{
		SensitiveType: tpm2.TPMAlgKeyedHash,
		SeedValue:     tpm2.TPM2BDigest{Buffer: obfuscation},
		Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BSensitiveData{Buffer: dek}),
	})
	defer clear(sensitive)
	encKey, err := tpm2.ImportEncapsulationKey(ekPub)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	dup, seed, err := tpm2.CreateDuplicate(rand.Reader, encKey, name.Buffer, sensitive)
	if err != nil {
		return envelope.EncryptedDataKey{}, err
	}
	var flags byte
	if ecc {
		flags |= flagECCEK
	}
	ct := tpm2.Marshal(tpm2.New2B(pub))
	ct = append(ct, tpm2.Marshal(tpm2.TPM2BPrivate{Buffer: dup})...)
	ct = append(ct, tpm2.Marshal(tpm2.TPM2BEncryptedSecret{Buffer: seed})...)
	return envelope.EncryptedDataKey{ProviderID: ProviderEK, ProviderInfo: marshalParentPolicy(flags, ekName, k.policy), Ciphertext: ct}, nil
}

// ekEDK is a parsed EK-sealed EDK.
type ekEDK struct {
	ekName []byte
	ecc    bool
	policy policy
	pub    tpm2.TPM2BPublic
	dup    tpm2.TPM2BPrivate
	seed   tpm2.TPM2BEncryptedSecret
	name   []byte
}

// parseEKEDK reads an EK-sealed EDK and checks the sealed object's public
// area: a keyed-hash data object with a SHA-256 name whose authPolicy and
// attributes are those of its recorded policy.
func parseEKEDK(edk envelope.EncryptedDataKey) (*ekEDK, error) {
	flags, parent, p, err := parseParentPolicy(edk.ProviderInfo, flagECCEK, ProviderEK)
	if err != nil {
		return nil, err
	}
	e := &ekEDK{ekName: parent, ecc: flags&flagECCEK != 0, policy: p}
	b := edk.Ciphertext
	var fields [3][]byte
	for i, what := range []string{"TPM2B_PUBLIC", "TPM2B_PRIVATE", "TPM2B_ENCRYPTED_SECRET"} {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: %s EDK: %s truncated", ErrUnwrap, ProviderEK, what)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 || len(b) < 2+n {
			return nil, fmt.Errorf("%w: %s EDK: %s of %d bytes, %d left", ErrUnwrap, ProviderEK, what, n, len(b)-2)
		}
		fields[i], b = bytes.Clone(b[2:2+n]), b[2+n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %s EDK: %d bytes after the encrypted seed", ErrUnwrap, ProviderEK, len(b))
	}
	h, err := parseHead(fields[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s EDK: %v", ErrUnwrap, ProviderEK, err)
	}
	sealed := h.typ == tpm2.TPMAlgKeyedHash && h.nameAlg == tpm2.TPMAlgSHA256 && !h.has(attrSensitiveDataOrigin) && !h.has(attrDecrypt) && !h.has(attrSign)
	if !sealed || !bytes.Equal(h.authPolicy, p.digest()) || h.has(attrUserWithAuth) != p.empty() {
		return nil, fmt.Errorf("%w: the %s EDK holds no sealed data object with its recorded policy (%s): altered", ErrUnwrap, ProviderEK, p.describe())
	}
	sum := sha256.Sum256(fields[0])
	e.name = append(binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMAlgSHA256)), sum[:]...)
	e.pub = tpm2.BytesAs2B[tpm2.TPMTPublic](fields[0])
	e.dup = tpm2.TPM2BPrivate{Buffer: fields[1]}
	e.seed = tpm2.TPM2BEncryptedSecret{Buffer: fields[2]}
	return e, nil
}

// createEK makes the TPM's EK from the TCG template (RSA-2048, or ECC P-256
// if ecc) in the endorsement hierarchy, whose authorization is taken to be
// empty (the TCG provisioning default).
func createEK(t transport.TPM, ecc bool) (*srk, error) {
	tmpl := tpm2.RSAEKTemplate
	if ecc {
		tmpl = tpm2.ECCEKTemplate
	}
	rsp, err := (tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}).Execute(t)
	if err != nil {
		return nil, fmt.Errorf("TPM2_CreatePrimary (EK): %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err == nil {
		err = verifySRK(pub, rsp.Name.Buffer, "TPM2_CreatePrimary (EK)")
	}
	if err != nil {
		flushHandle(t, rsp.ObjectHandle)
		return nil, err
	}
	return &srk{handle: rsp.ObjectHandle, name: rsp.Name, pub: *pub}, nil
}

// endorsementPolicy satisfies the EK's policy: TPM2_PolicySecret with the
// endorsement hierarchy (empty authorization).
func endorsementPolicy(t transport.TPM, h tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
	_, err := (tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		PolicySession: h,
		NonceTPM:      nonce,
	}).Execute(t)
	if err != nil {
		return fmt.Errorf("TPM2_PolicySecret (endorsement): %w", err)
	}
	return nil
}

// Unwrap opens an EK-sealed EDK on the device: the EK made from its
// template must have the EDK's EK name, then TPM2_Import and TPM2_Load
// under it (each authorized by a policy session with PolicySecret on the
// endorsement hierarchy, salted with the EK) and TPM2_Unseal in a salted
// session that encrypts the data key on its way out (a policy session
// with PolicyPCR when the EDK is bound to PCRs). ctx bounds the TPM calls.
func (k *EKKEK) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, _ envelope.EncryptionContext) ([]byte, error) {
	if k.dev == nil {
		return nil, fmt.Errorf("%w: %s encrypts only: open the data on the device with tpm:ek?device=DEV", ErrUnwrap, k)
	}
	if edk.ProviderID != ProviderEK {
		return nil, fmt.Errorf("%w: %s: provider id %q is not %s", ErrUnwrap, k, edk.ProviderID, ProviderEK)
	}
	e, err := parseEKEDK(edk)
	if err != nil {
		return nil, err
	}
	e.policy.signed = k.policy.signed
	what := k.desc + " (sealed to " + e.policy.describe() + ")"
	var dek []byte
	err = k.dev.run(ctx, func(c *conn) error {
		ek, err := createEK(c.l, e.ecc)
		if err != nil {
			return err
		}
		defer flushHandle(c.l, ek.handle)
		if !bytes.Equal(ek.name.Buffer, e.ekName) {
			return fmt.Errorf("%w: sealed to another TPM (EK name %s); this TPM's EK is %s", ErrDifferentTPM, hex.EncodeToString(e.ekName), hex.EncodeToString(ek.name.Buffer))
		}
		if err := e.policy.prepare(c.l); err != nil {
			return err
		}
		parent := func() tpm2.AuthHandle {
			return tpm2.AuthHandle{Handle: ek.handle, Name: ek.name,
				Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, endorsementPolicy, tpm2.Salted(ek.handle, ek.pub))}
		}
		imp, err := (tpm2.Import{ParentHandle: parent(), ObjectPublic: e.pub, Duplicate: e.dup, InSymSeed: e.seed}).Execute(c.l)
		if err != nil {
			if isLink(err) || isRetry(err) {
				return err
			}
			return fmt.Errorf("%w: %s: TPM2_Import: %v (the EDK was altered, or made for another EK)", ErrUnwrap, what, err)
		}
		lr, err := (tpm2.Load{ParentHandle: parent(), InPrivate: imp.OutPrivate, InPublic: e.pub}).Execute(c.l)
		if err != nil {
			if isLink(err) || isRetry(err) {
				return err
			}
			return fmt.Errorf("%w: %s: TPM2_Load: %v", ErrUnwrap, what, err)
		}
		defer flushHandle(c.l, lr.ObjectHandle)
		if !bytes.Equal(lr.Name.Buffer, e.name) {
			return fmt.Errorf("%w: %s: TPM2_Load answered with the name %s, but the object sent has the name %s", ErrTampered, what, shortName(lr.Name.Buffer), shortName(e.name))
		}
		sess := ek.hmacOut(nil)
		if !e.policy.empty() {
			sess = ek.policyOut(e.policy, nil)
		}
		rsp, err := (tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: lr.ObjectHandle, Name: tpm2.TPM2BName{Buffer: e.name}, Auth: sess}}).Execute(c.l)
		if err != nil {
			flushSessions(c.l, sess)
			return c.classify(e.policy, what, ErrUnwrap, err)
		}
		dek = append([]byte(nil), rsp.OutData.Buffer...)
		clear(rsp.OutData.Buffer)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}

// EKPublicKeyPEM returns the PEM SPKI of the TPM's EK (RSA-2048, or ECC
// P-256 if ecc), made from the TCG template; with cert, the EK certificate
// from the TPM's NV index instead (ErrEKCert if there is none). ctx bounds
// the TPM calls.
func (d *Device) EKPublicKeyPEM(ctx context.Context, ecc, cert bool) ([]byte, error) {
	var out []byte
	err := d.run(ctx, func(c *conn) error {
		ek, err := createEK(c.l, ecc)
		if err != nil {
			return err
		}
		flushHandle(c.l, ek.handle)
		pub, err := publicKeyOf(&ek.pub)
		if err != nil {
			return err
		}
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return err
		}
		if !cert {
			out = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
			return nil
		}
		index := nvRSAEKCert
		if ecc {
			index = nvECCEKCert
		}
		der, err := readNV(c.l, index)
		if err != nil {
			return fmt.Errorf("%w: no EK certificate at NV index %#x: %v", ErrEKCert, uint32(index), err)
		}
		der = ekCertDER(der)
		crt, err := parseEKCert(der)
		if err != nil {
			return fmt.Errorf("%w: NV index %#x: %v", ErrEKCert, uint32(index), err)
		}
		// Compared as SPKI: the certificate's key is ECDSA, the EK's ECDH.
		if certSPKI, err := x509.MarshalPKIXPublicKey(crt.PublicKey); err != nil || !bytes.Equal(certSPKI, spki) {
			return fmt.Errorf("%w: the certificate at NV index %#x is not for this TPM's EK", ErrEKCert, uint32(index))
		}
		out = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	return out, nil
}

// ekCertDER returns the DER certificate an EK certificate NV index holds:
// without the TCG PC Client header (10 01 00, then a 2-byte length) that
// some TPMs put before it, and without the padding some leave after it
// (x509.ParseCertificate refuses trailing data).
func ekCertDER(b []byte) []byte {
	if len(b) > 5 && bytes.Equal(b[:3], []byte{0x10, 0x01, 0x00}) {
		if n := int(binary.BigEndian.Uint16(b[3:5])); len(b) >= 5+n {
			b = b[5 : 5+n]
		}
	}
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(b, &raw); err == nil && len(rest) > 0 {
		return raw.FullBytes
	}
	return b
}

// readNV reads an NV index whole (in chunks the TPM accepts).
func readNV(t transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	rp, err := (tpm2.NVReadPublic{NVIndex: index}).Execute(t)
	if err != nil {
		return nil, err
	}
	pub, err := rp.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	size := int(pub.DataSize)
	var out []byte
	for off := 0; off < size; {
		n := min(size-off, 768)
		rsp, err := (tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: index, Name: rp.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: rp.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}).Execute(t)
		if err != nil {
			return nil, err
		}
		out = append(out, rsp.Data.Buffer...)
		off += n
	}
	return out, nil
}
