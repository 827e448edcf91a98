package goesdk_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"testing"

	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	primtypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/primitives/awscryptographyprimitivessmithygeneratedtypes"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// ecdhCurves are the curves of the ESDK raw ECDH keyring.
var ecdhCurves = []struct {
	name string
	c    ecdh.Curve
	spec primtypes.ECDHCurveSpec
}{
	{"p256", ecdh.P256(), primtypes.ECDHCurveSpecEccNistP256},
	{"p384", ecdh.P384(), primtypes.ECDHCurveSpecEccNistP384},
	{"p521", ecdh.P521(), primtypes.ECDHCurveSpecEccNistP521},
}

// ecdhKey is a key pair made in the test, in the forms each side takes: the
// Go ESDK a PKCS#8 PEM private key and a DER SubjectPublicKeyInfo public
// key; hsmenv the keys rawecdh parses from the same PEM bytes.
type ecdhKey struct {
	privPEM []byte // PKCS#8 "PRIVATE KEY"
	pubDER  []byte // SubjectPublicKeyInfo
	priv    *ecdh.PrivateKey
	pub     *ecdh.PublicKey
}

func newECDHKey(t *testing.T, c ecdh.Curve) *ecdhKey {
	t.Helper()
	k, err := c.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	out := &ecdhKey{privPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8}), pubDER: spki}
	if out.priv, err = rawecdh.ParsePrivateKeyPEM(out.privPEM); err != nil {
		t.Fatalf("hsmenv reads the PKCS#8 PEM: %v", err)
	}
	if out.pub, err = rawecdh.ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})); err != nil {
		t.Fatalf("hsmenv reads the SubjectPublicKeyInfo: %v", err)
	}
	if !out.priv.Equal(k) || !out.pub.Equal(k.PublicKey()) {
		t.Fatal("hsmenv read other keys than were written")
	}
	return out
}

// ecdhKeyring makes a Go ESDK raw ECDH keyring.
func (s *sdk) ecdhKeyring(t *testing.T, spec primtypes.ECDHCurveSpec, scheme mpltypes.RawEcdhStaticConfigurations) mpltypes.IKeyring {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	kr, err := s.mpl.CreateRawEcdhKeyring(context.Background(), mpltypes.CreateRawEcdhKeyringInput{CurveSpec: spec, KeyAgreementScheme: scheme})
	if err != nil {
		t.Fatalf("Go ESDK raw ECDH keyring: %v", err)
	}
	return kr
}

func goEphemeral(recipient *ecdhKey) mpltypes.RawEcdhStaticConfigurations {
	return &mpltypes.RawEcdhStaticConfigurationsMemberEphemeralPrivateKeyToStaticPublicKey{
		Value: mpltypes.EphemeralPrivateKeyToStaticPublicKeyInput{RecipientPublicKey: recipient.pubDER}}
}

func goDiscovery(recipient *ecdhKey) mpltypes.RawEcdhStaticConfigurations {
	return &mpltypes.RawEcdhStaticConfigurationsMemberPublicKeyDiscovery{
		Value: mpltypes.PublicKeyDiscoveryInput{RecipientStaticPrivateKey: recipient.privPEM}}
}

func goStatic(sender, recipient *ecdhKey) mpltypes.RawEcdhStaticConfigurations {
	return &mpltypes.RawEcdhStaticConfigurationsMemberRawPrivateKeyToStaticPublicKey{
		Value: mpltypes.RawPrivateKeyToStaticPublicKeyInput{SenderStaticPrivateKey: sender.privPEM, RecipientPublicKey: recipient.pubDER}}
}

// checkECDHEDK checks that msg has one raw-ecdh EDK to recipient, from
// sender if it is not nil (else from a key that is neither party's), of the
// 112 bytes a 32-byte data key makes (salt, commitment key, wrapped key,
// tag).
func checkECDHEDK(t *testing.T, msg []byte, c ecdh.Curve, recipient, sender *ecdh.PublicKey, others ...*ecdh.PublicKey) {
	t.Helper()
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.EDKs) != 1 || h.EDKs[0].ProviderID != rawecdh.ProviderID || len(h.EDKs[0].Ciphertext) != 112 {
		t.Fatalf("EDKs %+v; want one raw-ecdh EDK of 112 bytes", h.EDKs)
	}
	info, err := rawecdh.ParseInfo(h.EDKs[0].ProviderInfo)
	if err != nil {
		t.Fatalf("provider info %x: %v", h.EDKs[0].ProviderInfo, err)
	}
	if info.Curve != c || !info.Recipient.Equal(recipient) {
		t.Fatalf("provider info %x: not to the recipient on %v", h.EDKs[0].ProviderInfo, c)
	}
	if sender != nil && !info.Sender.Equal(sender) {
		t.Fatalf("provider info %x: the sender is not the static sender key", h.EDKs[0].ProviderInfo)
	}
	if sender == nil {
		for _, o := range append(others, recipient) {
			if info.Sender.Equal(o) {
				t.Fatalf("provider info %x: an ephemeral message's sender is a static key", h.EDKs[0].ProviderInfo)
			}
		}
	}
}

// TestRawECDH: the ESDK raw ECDH keyring's three schemas, each curve, both
// suites, the empty and a non-ASCII context (which the KDF binds), in both
// directions. R is the recipient, S the static sender.
//
//   - Go ephemeral(R) encrypts; hsmenv discovery(R) decrypts.
//   - Go static(S->R) encrypts; hsmenv discovery(R), static(R->S) (the
//     recipient's keyring, roles swapped) and static(S->R) (the sender's own)
//     decrypt.
//   - hsmenv ephemeral(R) encrypts; Go discovery(R) decrypts.
//   - hsmenv static(S->R) encrypts; Go discovery(R), static(R->S) and
//     static(S->R) decrypt.
func TestRawECDH(t *testing.T) {
	s := goSDK(t)
	n := 0
	for _, cv := range ecdhCurves {
		for _, suite := range suites {
			for _, cc := range contexts {
				n++
				frame, size := []int{512, 4096, 65536}[n%3], []int{0, 1, 4097, 100 << 10}[n%4]
				t.Run(fmt.Sprintf("%s/%v/%s/frame%d/size%d", cv.name, suite, cc.name, frame, size), func(t *testing.T) {
					t.Parallel()
					r, snd := newECDHKey(t, cv.c), newECDHKey(t, cv.c)
					goEph := s.ecdhKeyring(t, cv.spec, goEphemeral(r))
					goDisc := s.ecdhKeyring(t, cv.spec, goDiscovery(r))
					goSR := s.ecdhKeyring(t, cv.spec, goStatic(snd, r))
					goRS := s.ecdhKeyring(t, cv.spec, goStatic(r, snd))
					hsEph := rawecdh.NewEphemeral(r.pub)
					hsDisc := rawecdh.NewDiscovery(r.priv)
					hsSR := rawecdh.NewStatic(snd.priv, r.pub)
					hsRS := rawecdh.NewStatic(r.priv, snd.pub)
					opts := envelope.DecryptOptions{RequiredContext: cc.ec}

					t.Run("go-ephemeral/hsmenv-discovery", func(t *testing.T) {
						pt := randBytes(size)
						msg := s.encrypt(t, pt, goEph, nil, suite, frame, cc.ec)
						checkECDHEDK(t, msg, cv.c, r.pub, nil, snd.pub)
						hsmenvOpens(t, msg, pt, envelope.NewKeyring(hsDisc), suite, frame, cc.ec, opts)
						// Neither static keyring claims it: its sender is
						// the ephemeral key.
						if _, _, err := envelope.Decrypt(context.Background(), msg, envelope.NewKeyring(hsRS, hsSR), opts); !errors.Is(err, envelope.ErrNoKEK) {
							t.Fatalf("static KEKs on an ephemeral-schema message: %v; want ErrNoKEK", err)
						}
					})
					t.Run("go-static/hsmenv-discovery-and-static", func(t *testing.T) {
						pt := randBytes(size)
						msg := s.encrypt(t, pt, goSR, nil, suite, frame, cc.ec)
						checkECDHEDK(t, msg, cv.c, r.pub, snd.pub)
						for _, kek := range []*rawecdh.KEK{hsDisc, hsRS, hsSR} {
							hsmenvOpens(t, msg, pt, envelope.NewKeyring(kek), suite, frame, cc.ec, opts)
						}
					})
					t.Run("hsmenv-ephemeral/go-discovery", func(t *testing.T) {
						pt := randBytes(size)
						msg, err := envelope.Encrypt(context.Background(), pt, envelope.NewKeyring(hsEph), envelope.EncryptOptions{Suite: suite, FrameSize: frame, Context: cc.ec})
						if err != nil {
							t.Fatal(err)
						}
						checkECDHEDK(t, msg, cv.c, r.pub, nil, snd.pub)
						goOpens(t, s, msg, pt, goDisc, nil, cc.ec, cc.ec)
					})
					t.Run("hsmenv-static/go-discovery-and-static", func(t *testing.T) {
						pt := randBytes(size)
						msg, err := envelope.Encrypt(context.Background(), pt, envelope.NewKeyring(hsSR), envelope.EncryptOptions{Suite: suite, FrameSize: frame, Context: cc.ec})
						if err != nil {
							t.Fatal(err)
						}
						checkECDHEDK(t, msg, cv.c, r.pub, snd.pub)
						for _, kr := range []mpltypes.IKeyring{goDisc, goRS, goSR} {
							goOpens(t, s, msg, pt, kr, nil, cc.ec, cc.ec)
						}
					})
				})
			}
		}
	}
}
