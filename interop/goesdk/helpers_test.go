// Package goesdk_test checks hsmenv against the official AWS Encryption SDK
// for Go (github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk,
// with the AWS Cryptographic Material Providers Library) in both
// directions, in process: messages the Go ESDK writes open in hsmenv, and
// messages hsmenv writes open in the Go ESDK. The Go ESDK is configured with
// FORBID_RETRY, so it accepts only the specification's format (not the
// ESDK-.NET 4.0.0 variant it otherwise retries with).
//
// It is a module of its own so that the main module does not depend on the
// ESDK and the AWS SDK it pulls in; `make test` runs it.
package goesdk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"maps"
	"sync"
	"testing"

	mpl "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	esdk "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// namespace is the key namespace (the EDK provider id) of the raw AES and
// RSA keys on both sides.
const namespace = "hsmenv-goesdk"

var suites = []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA}

// ctxCase is an encryption context of the matrix.
type ctxCase struct {
	name string
	ec   envelope.EncryptionContext
}

var contexts = []ctxCase{
	{"empty", nil},
	// By UTF-8 bytes (the spec): B < a < z < é < ключ < ｡ < 😀. By UTF-16
	// code units 😀 (D83D) would sort before ｡ (FF61), and by a locale
	// a < B: an implementation sorting another way fails to interoperate.
	{"non-ascii", envelope.EncryptionContext{"B": "1", "a": "2", "z": "😀", "é": "3", "ключ": "値", "｡": "4", "😀": "5"}},
}

// sdk is the Go ESDK's side: its material providers and its client.
//
// The Go ESDK is not safe for concurrent use: every Encrypt and Decrypt,
// even on separate clients, writes a process-wide empty sequence of the
// Dafny runtime (Base64.FromIndicesToChars: _dafny.EmptySeq.SetString(),
// DafnyRuntimeGo v4.11.3), which -race reports (aws/aws-encryption-sdk
// issue 902). So calls into it that may run alongside others hold mu;
// hsmenv's side of a test runs in parallel.
type sdk struct {
	mu     sync.Mutex
	mpl    *mpl.Client
	client *esdk.Client
}

var (
	sdkOnce sync.Once
	theSDK  *sdk
	sdkErr  error
)

// goSDK returns the Go ESDK client (commitment policy
// REQUIRE_ENCRYPT_REQUIRE_DECRYPT, NetV4_0_0_RetryPolicy FORBID_RETRY) and
// its material providers client, made once.
func goSDK(t *testing.T) *sdk {
	t.Helper()
	sdkOnce.Do(func() {
		mp, err := mpl.NewClient(mpltypes.MaterialProvidersConfig{})
		if err != nil {
			sdkErr = fmt.Errorf("mpl.NewClient: %w", err)
			return
		}
		policy := mpltypes.ESDKCommitmentPolicyRequireEncryptRequireDecrypt
		retry := esdktypes.NetV4_0_0_RetryPolicyForbidRetry
		c, err := esdk.NewClient(esdktypes.AwsEncryptionSdkConfig{CommitmentPolicy: &policy, NetV4_0_0_RetryPolicy: &retry})
		if err != nil {
			sdkErr = fmt.Errorf("esdk.NewClient: %w", err)
			return
		}
		theSDK = &sdk{mpl: mp, client: c}
	})
	if sdkErr != nil {
		t.Fatal(sdkErr)
	}
	return theSDK
}

// goSuite is the Go ESDK's name of a suite.
func goSuite(s envelope.SuiteID) mpltypes.ESDKAlgorithmSuiteId {
	switch s {
	case envelope.SuiteCommit:
		return mpltypes.ESDKAlgorithmSuiteIdAlgAes256GcmHkdfSha512CommitKey
	case envelope.SuiteCommitECDSA:
		return mpltypes.ESDKAlgorithmSuiteIdAlgAes256GcmHkdfSha512CommitKeyEcdsaP384
	}
	panic(fmt.Sprintf("no Go ESDK suite for %v", s))
}

// encrypt encrypts pt with the Go ESDK under keyring (or cmm if keyring is
// nil) and checks what it reports.
func (s *sdk) encrypt(t *testing.T, pt []byte, keyring mpltypes.IKeyring, cmm mpltypes.ICryptographicMaterialsManager, suite envelope.SuiteID, frame int, ec envelope.EncryptionContext) []byte {
	t.Helper()
	id := goSuite(suite)
	fl := int64(frame)
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.client.Encrypt(context.Background(), esdktypes.EncryptInput{
		Plaintext: pt, AlgorithmSuiteId: &id, FrameLength: &fl, EncryptionContext: ec,
		Keyring: keyring, MaterialsManager: cmm,
	})
	if err != nil {
		t.Fatalf("Go ESDK encrypt: %v", err)
	}
	if out.AlgorithmSuiteId != id {
		t.Fatalf("Go ESDK encrypt: suite %s, asked for %s", out.AlgorithmSuiteId, id)
	}
	return out.Ciphertext
}

// decrypt decrypts msg with the Go ESDK under keyring (or cmm if keyring is
// nil), with reproduced as the reproduced encryption context.
func (s *sdk) decrypt(msg []byte, keyring mpltypes.IKeyring, cmm mpltypes.ICryptographicMaterialsManager, reproduced envelope.EncryptionContext) (*esdktypes.DecryptOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.Decrypt(context.Background(), esdktypes.DecryptInput{
		Ciphertext: msg, EncryptionContext: reproduced, Keyring: keyring, MaterialsManager: cmm,
	})
}

// goOpens checks that the Go ESDK decrypts msg (made by hsmenv) with
// keyring (or cmm) and reproduced, and reports pt, the message's suite and
// the context want (plus the signing key of signed suites).
func goOpens(t *testing.T, s *sdk, msg, pt []byte, keyring mpltypes.IKeyring, cmm mpltypes.ICryptographicMaterialsManager, reproduced, want envelope.EncryptionContext) {
	t.Helper()
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("hsmenv's own message: %v", err)
	}
	out, err := s.decrypt(msg, keyring, cmm, reproduced)
	if err != nil {
		t.Fatalf("Go ESDK decrypt: %v", err)
	}
	if !bytes.Equal(out.Plaintext, pt) {
		t.Fatalf("Go ESDK decrypt: %d bytes, differ from the %d-byte plaintext", len(out.Plaintext), len(pt))
	}
	if out.AlgorithmSuiteId != goSuite(h.Suite) {
		t.Fatalf("Go ESDK reports suite %s, want %s", out.AlgorithmSuiteId, goSuite(h.Suite))
	}
	if w := withPublicKey(t, h.Suite, want, out.EncryptionContext); !maps.Equal(out.EncryptionContext, map[string]string(w)) {
		t.Fatalf("Go ESDK reports context %q, want %q", out.EncryptionContext, w)
	}
}

// hsmenvOpens checks that hsmenv parses msg (made by the Go ESDK) as a v2
// message of suite with frame-byte frames whose header stores stored, and
// decrypts it with kr and opts to pt; it returns the decrypted header.
func hsmenvOpens(t *testing.T, msg, pt []byte, kr *envelope.Keyring, suite envelope.SuiteID, frame int, stored envelope.EncryptionContext, opts envelope.DecryptOptions) *envelope.Header {
	t.Helper()
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("ParseHeader: %v", err)
	}
	want := withPublicKey(t, suite, stored, h.Context)
	if h.Version != 2 || h.Suite != suite || !h.Framed || h.FrameLength != uint32(frame) {
		t.Fatalf("header: version %d suite %v framed %v frame length %d; want 2, %v, framed, %d", h.Version, h.Suite, h.Framed, h.FrameLength, suite, frame)
	}
	if !maps.Equal(h.Context, want) {
		t.Fatalf("header context %q, want %q", h.Context, want)
	}
	got, hd, err := envelope.Decrypt(context.Background(), msg, kr, opts)
	if err != nil {
		t.Fatalf("hsmenv decrypt: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("hsmenv decrypt: %d bytes, differ from the %d-byte plaintext", len(got), len(pt))
	}
	if hd.Suite != suite || !maps.Equal(hd.Context, want) {
		t.Fatalf("hsmenv decrypt: suite %v context %q", hd.Suite, hd.Context)
	}
	return hd
}

// withPublicKey returns ec plus, for signed suites, the
// aws-crypto-public-key of got, which it checks is a base64 compressed
// P-384 point.
func withPublicKey(t *testing.T, suite envelope.SuiteID, ec envelope.EncryptionContext, got map[string]string) envelope.EncryptionContext {
	t.Helper()
	want := envelope.EncryptionContext{}
	maps.Copy(want, ec)
	if suite == envelope.SuiteCommitECDSA {
		pk := got["aws-crypto-public-key"]
		raw, err := base64.StdEncoding.DecodeString(pk)
		if err != nil || len(raw) != 49 || (raw[0] != 2 && raw[0] != 3) {
			t.Fatalf("aws-crypto-public-key %q is not a base64 compressed P-384 point", pk)
		}
		want["aws-crypto-public-key"] = pk
	}
	return want
}

// keyDef is one raw key both sides hold: the hsmenv KEK and the Go ESDK
// keyring.
type keyDef struct {
	label string
	kek   envelope.KEK
	kr    mpltypes.IKeyring
}

var (
	rawOnce sync.Once
	rawKeys map[string]*keyDef
	rawErr  error
)

// rawLabels are the raw keys of the matrix: AES-256 and RSA under every
// padding of the ESDK raw RSA keyring.
var rawLabels = []string{"aes256", "oaep-sha1", "oaep-sha256", "oaep-sha384", "oaep-sha512", "pkcs1"}

// keys returns the named raw keys, made once: a fresh AES-256 key, and two
// fresh RSA pairs (2048 and 3072 bits) shared by the paddings, each padding
// under its own key name so that a message names exactly one padding.
func keys(t *testing.T, labels ...string) []*keyDef {
	t.Helper()
	rawOnce.Do(func() { rawKeys, rawErr = makeRawKeys(goSDK(t)) })
	if rawErr != nil {
		t.Fatal(rawErr)
	}
	var out []*keyDef
	for _, l := range labels {
		k, ok := rawKeys[l]
		if !ok {
			t.Fatalf("no key %q", l)
		}
		out = append(out, k)
	}
	return out
}

func makeRawKeys(s *sdk) (map[string]*keyDef, error) {
	ctx := context.Background()
	m := map[string]*keyDef{}
	aesKey := randBytes(32)
	kek, err := rawaes.New(namespace, "aes256", aesKey)
	if err != nil {
		return nil, err
	}
	kr, err := s.mpl.CreateRawAesKeyring(ctx, mpltypes.CreateRawAesKeyringInput{
		KeyNamespace: namespace, KeyName: "aes256", WrappingKey: aesKey, WrappingAlg: mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16,
	})
	if err != nil {
		return nil, fmt.Errorf("Go ESDK raw AES keyring: %w", err)
	}
	m["aes256"] = &keyDef{label: "aes256", kek: kek, kr: kr}

	type pair struct {
		priv            *rsa.PrivateKey
		pubPEM, privPEM []byte
	}
	pairs := map[int]*pair{}
	for _, bits := range []int{2048, 3072} {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		der8, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		derPub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			return nil, err
		}
		pairs[bits] = &pair{priv,
			pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: derPub}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8})}
	}
	for _, c := range []struct {
		padding string
		bits    int
		goPad   mpltypes.PaddingScheme
	}{
		{"oaep-sha1", 3072, mpltypes.PaddingSchemeOaepSha1Mgf1},
		{"oaep-sha256", 2048, mpltypes.PaddingSchemeOaepSha256Mgf1},
		{"oaep-sha384", 3072, mpltypes.PaddingSchemeOaepSha384Mgf1},
		{"oaep-sha512", 2048, mpltypes.PaddingSchemeOaepSha512Mgf1},
		{"pkcs1", 3072, mpltypes.PaddingSchemePkcs1},
	} {
		p := pairs[c.bits]
		padding, err := rawrsa.ParsePadding(c.padding)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("rsa%d-%s", c.bits, c.padding)
		kek, err := rawrsa.New(namespace, name, &p.priv.PublicKey, p.priv, padding)
		if err != nil {
			return nil, err
		}
		kr, err := s.mpl.CreateRawRsaKeyring(ctx, mpltypes.CreateRawRsaKeyringInput{
			KeyNamespace: namespace, KeyName: name, PaddingScheme: c.goPad, PublicKey: p.pubPEM, PrivateKey: p.privPEM,
		})
		if err != nil {
			return nil, fmt.Errorf("Go ESDK raw RSA keyring %s: %w", name, err)
		}
		m[c.padding] = &keyDef{label: c.padding, kek: kek, kr: kr}
	}
	return m, nil
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
