package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Signed PCR policies: an object sealed to an authority's public key
// (authority=PEMFILE) has the authPolicy of TPM2_PolicyAuthorize with that
// key and an empty policyRef. It opens when the PCRs hold any set of values
// the authority signed (hsmenv tpm sign-pcrs): the device checks the
// signature (TPM2_VerifySignature, which gives a ticket), runs
// TPM2_PolicyPCR and then TPM2_PolicyAuthorize with the ticket. After a
// firmware or kernel update the authority signs the new values; nothing is
// sealed again.

// ErrSignedPolicy reports a signed PCR policy file that does not parse or
// verify.
var ErrSignedPolicy = errors.New("signed PCR policy")

// maxSignedPolicies bounds the policy files read from a directory.
const maxSignedPolicies = 256

// signedPolicy is one approved PCR set, signed by an authority.
type signedPolicy struct {
	file      string
	approved  policy // the PCRs and their values
	authority *ecdsa.PublicKey
	authName  []byte
	r, s      []byte
}

// signedPolicyFile is the JSON of a signed policy file.
type signedPolicyFile struct {
	Version   int               `json:"version"`
	PCRs      string            `json:"pcrs"`
	Values    map[string]string `json:"values"`
	Approved  string            `json:"approved_policy"`
	Authority string            `json:"authority"` // PEM public key
	Signature string            `json:"signature"` // hex r || s (32 + 32)
}

// authorityPublic is the TPM public area of an authority key (ECDSA P-256
// with SHA-256), as TPM2_LoadExternal loads it and as its name is computed.
func authorityPublic(pub *ecdsa.PublicKey) (*tpm2.TPMTPublic, error) {
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the authority key must be ECDSA P-256", ErrSignedPolicy)
	}
	point, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
	}
	return &tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true, UserWithAuth: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: point[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: point[33:]},
		}),
	}, nil
}

// AuthorityName returns the TPM name of an authority public key: what
// sealed objects' policies and EDKs record.
func AuthorityName(pub *ecdsa.PublicKey) ([]byte, error) {
	tp, err := authorityPublic(pub)
	if err != nil {
		return nil, err
	}
	name, err := tpm2.ObjectName(tp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
	}
	return name.Buffer, nil
}

// ReadAuthorityKey reads an authority's ECDSA P-256 public key from a PEM
// file (PUBLIC KEY, CERTIFICATE, or the private key, whose public half is
// taken).
func ReadAuthorityKey(path string) (*ecdsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
	}
	pub, err := parseAuthorityPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrSignedPolicy, path, err)
	}
	return pub, nil
}

func parseAuthorityPEM(b []byte) (*ecdsa.PublicKey, error) {
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("no PEM public key, certificate or EC private key")
		}
		var k any
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				k = c.PublicKey
			}
		case "PRIVATE KEY", "EC PRIVATE KEY":
			priv, err := ecPrivateKey(blk)
			if err != nil {
				return nil, err
			}
			return &priv.PublicKey, nil
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		pub, ok := k.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			return nil, errors.New("not an ECDSA P-256 key")
		}
		return pub, nil
	}
}

// ReadAuthorityPrivateKey reads the authority's ECDSA P-256 private key
// (PEM PKCS#8 or SEC 1).
func ReadAuthorityPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
	}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%w: %s holds no EC private key", ErrSignedPolicy, path)
		}
		if blk.Type != "PRIVATE KEY" && blk.Type != "EC PRIVATE KEY" {
			continue
		}
		k, err := ecPrivateKey(blk)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrSignedPolicy, path, err)
		}
		return k, nil
	}
}

// ecPrivateKey parses a PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"
// block that must hold an ECDSA P-256 key.
func ecPrivateKey(blk *pem.Block) (*ecdsa.PrivateKey, error) {
	var priv any
	var err error
	if blk.Type == "EC PRIVATE KEY" {
		priv, err = x509.ParseECPrivateKey(blk.Bytes)
	} else {
		priv, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, err
	}
	k, ok := priv.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return k, nil
}

// SignPCRs returns a signed policy file approving the SHA-256 values of
// pcrs (in the order of pcrs) under the authority key signer (ECDSA P-256:
// an *ecdsa.PrivateKey, or a key in a token through hsm.OpenSigner): the
// digest of TPM2_PolicyPCR over those values, signed as
// TPM2_PolicyAuthorize checks it (aHash = SHA-256(approvedPolicy ||
// policyRef), policyRef empty).
func SignPCRs(signer crypto.Signer, pcrs []int, values [][]byte) ([]byte, error) {
	if len(pcrs) == 0 || len(pcrs) != len(values) {
		return nil, fmt.Errorf("%w: %d PCRs and %d values", ErrSignedPolicy, len(pcrs), len(values))
	}
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the authority key must be ECDSA P-256", ErrSignedPolicy)
	}
	p := policy{pcrs: pcrs, values: values}
	approved := p.digest()
	aHash := sha256.Sum256(approved)
	der, err := signer.Sign(rand.Reader, aHash[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: signing: %w", ErrSignedPolicy, err)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) > 0 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, fmt.Errorf("%w: the signer returned no ECDSA P-256 signature", ErrSignedPolicy)
	}
	if !ecdsa.VerifyASN1(pub, aHash[:], der) {
		return nil, fmt.Errorf("%w: the signer's signature does not verify under its public key", ErrSignedPolicy)
	}
	r, s := sig.R, sig.S
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	f := signedPolicyFile{
		Version:   1,
		PCRs:      formatPCRs(pcrs),
		Values:    map[string]string{},
		Approved:  hex.EncodeToString(approved),
		Authority: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		Signature: hex.EncodeToString(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)),
	}
	for i, pcr := range pcrs {
		f.Values[strconv.Itoa(pcr)] = hex.EncodeToString(values[i])
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// readSignedPolicies reads a signed policy file, or every *.json file of a
// directory, and checks each one's signature on the host.
func readSignedPolicies(path string) ([]*signedPolicy, error) {
	files := []string{path}
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
	} else if fi.IsDir() {
		m, err := filepath.Glob(filepath.Join(path, "*.json"))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%w: no *.json signed policy in %s", ErrSignedPolicy, path)
		}
		if len(m) > maxSignedPolicies {
			return nil, fmt.Errorf("%w: %d files in %s, at most %d", ErrSignedPolicy, len(m), path, maxSignedPolicies)
		}
		sort.Strings(m)
		files = m
	}
	var out []*signedPolicy
	for _, f := range files {
		sp, err := readSignedPolicy(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}

// readSignedPolicy reads and checks one signed policy file.
func readSignedPolicy(path string) (*signedPolicy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignedPolicy, err)
	}
	if len(b) > 64<<10 {
		return nil, fmt.Errorf("%w: %s: %d bytes", ErrSignedPolicy, path, len(b))
	}
	bad := func(why string, a ...any) (*signedPolicy, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrSignedPolicy, path, fmt.Sprintf(why, a...))
	}
	var f signedPolicyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return bad("not a signed policy file: %v", err)
	}
	if f.Version != 1 {
		return bad("version %d (this hsmenv reads 1)", f.Version)
	}
	pcrs, err := ParsePCRs(f.PCRs)
	if err != nil {
		return bad("%v", err)
	}
	sp := &signedPolicy{file: path, approved: policy{pcrs: pcrs}}
	for _, pcr := range pcrs {
		v, err := pcrValue(f.Values[strconv.Itoa(pcr)])
		if err != nil {
			return bad("PCR %d: %v", pcr, err)
		}
		sp.approved.values = append(sp.approved.values, v)
	}
	if len(f.Values) != len(pcrs) {
		return bad("%d values for %d PCRs", len(f.Values), len(pcrs))
	}
	if hex.EncodeToString(sp.approved.digest()) != strings.ToLower(f.Approved) {
		return bad("the approved policy digest is not that of its PCR values")
	}
	if sp.authority, err = parseAuthorityPEM([]byte(f.Authority)); err != nil {
		return bad("authority: %v", err)
	}
	if sp.authName, err = AuthorityName(sp.authority); err != nil {
		return nil, err
	}
	sig, err := hex.DecodeString(f.Signature)
	if err != nil || len(sig) != 64 {
		return bad("the signature is not 64 bytes of hex")
	}
	sp.r, sp.s = sig[:32], sig[32:]
	aHash := sha256.Sum256(sp.approved.digest())
	if !ecdsa.Verify(sp.authority, aHash[:], new(big.Int).SetBytes(sp.r), new(big.Int).SetBytes(sp.s)) {
		return bad("the signature does not verify under its authority key")
	}
	return sp, nil
}

// authorization is the signed set chosen for one unseal and the TPM's
// ticket for its signature.
type authorization struct {
	sp     *signedPolicy
	name   tpm2.TPM2BName
	ticket tpm2.TPMTTKVerified
}

// prepare chooses, before any object is loaded, the first signed set (by
// the policy's authority) whose PCR values the TPM holds now, and has the
// TPM verify its signature (TPM2_LoadExternal, TPM2_VerifySignature: the
// ticket outlives the key, which is flushed at once). The policy session
// then only runs PolicyPCR and PolicyAuthorize (authorize).
func (p *policy) prepare(t transport.TPM) error {
	if p.authority == nil {
		return nil
	}
	var mine []*signedPolicy
	for _, sp := range p.signed {
		if string(sp.authName) == string(p.authority) {
			mine = append(mine, sp)
		}
	}
	if len(mine) == 0 {
		if len(p.signed) == 0 {
			return fmt.Errorf("%w: sealed to PCR values signed by the authority %s: give signed-pcrs=FILE|DIR (hsmenv tpm sign-pcrs)", ErrPCR, shortName(p.authority))
		}
		return fmt.Errorf("%w: sealed to PCR values signed by the authority %s, and no signed policy given is by that key (signed by another key?)", ErrPCR, shortName(p.authority))
	}
	var differs []string
	for _, sp := range mine {
		now, err := readPCRs(t, sp.approved.pcrs)
		if err != nil {
			return err
		}
		match := true
		for i := range now {
			if string(now[i]) != string(sp.approved.values[i]) {
				match = false
				differs = append(differs, fmt.Sprintf("%s: PCR %d", filepath.Base(sp.file), sp.approved.pcrs[i]))
				break
			}
		}
		if match {
			a, err := sp.verify(t)
			if err != nil {
				return err
			}
			p.auth = a
			return nil
		}
	}
	return fmt.Errorf("%w: no signed PCR policy matches the PCRs now (%s differ); have the authority sign the new values (hsmenv tpm sign-pcrs)", ErrPCR, strings.Join(differs, ", "))
}

// verify has the TPM check sp's signature and returns the ticket.
func (sp *signedPolicy) verify(t transport.TPM) (*authorization, error) {
	pub, err := authorityPublic(sp.authority)
	if err != nil {
		return nil, err
	}
	le, err := (tpm2.LoadExternal{InPublic: tpm2.New2B(*pub), Hierarchy: tpm2.TPMRHOwner}).Execute(t)
	if err != nil {
		return nil, fmt.Errorf("TPM2_LoadExternal (authority key): %w", err)
	}
	defer flushHandle(t, le.ObjectHandle)
	if string(le.Name.Buffer) != string(sp.authName) {
		return nil, fmt.Errorf("%w: TPM2_LoadExternal named the authority key %s, not %s", ErrTampered, shortName(le.Name.Buffer), shortName(sp.authName))
	}
	aHash := sha256.Sum256(sp.approved.digest())
	vs, err := (tpm2.VerifySignature{
		KeyHandle: tpm2.NamedHandle{Handle: le.ObjectHandle, Name: le.Name},
		Digest:    tpm2.TPM2BDigest{Buffer: aHash[:]},
		Signature: tpm2.TPMTSignature{
			SigAlg: tpm2.TPMAlgECDSA,
			Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
				Hash:       tpm2.TPMAlgSHA256,
				SignatureR: tpm2.TPM2BECCParameter{Buffer: sp.r},
				SignatureS: tpm2.TPM2BECCParameter{Buffer: sp.s},
			}),
		},
	}).Execute(t)
	if err != nil {
		return nil, fmt.Errorf("%w: TPM2_VerifySignature (%s): %v", ErrPCR, sp.file, err)
	}
	return &authorization{sp: sp, name: le.Name, ticket: vs.Validation}, nil
}

// authorize runs, in session h, PolicyPCR over the chosen signed set's
// PCRs and PolicyAuthorize with its ticket (prepare chose it).
func (p policy) authorize(t transport.TPM, h tpm2.TPMISHPolicy) error {
	if p.auth == nil {
		return fmt.Errorf("%w: no signed PCR policy was prepared", ErrPCR)
	}
	sp := p.auth.sp
	if _, err := (tpm2.PolicyPCR{PolicySession: h, Pcrs: selection(sp.approved.pcrs)}).Execute(t); err != nil {
		return fmt.Errorf("TPM2_PolicyPCR: %w", err)
	}
	if _, err := (tpm2.PolicyAuthorize{
		PolicySession:  h,
		ApprovedPolicy: tpm2.TPM2BDigest{Buffer: sp.approved.digest()},
		KeySign:        p.auth.name,
		CheckTicket:    p.auth.ticket,
	}).Execute(t); err != nil {
		return fmt.Errorf("TPM2_PolicyAuthorize: %w", err)
	}
	return nil
}
