package rawecdh_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/elliptic"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

var ctx = context.Background()

// TestCompressionKnownAnswer: the MPL's public keys compress to the forms
// its TestECDH.dfy gives, and the PKCS#8 keys hold those public keys.
func TestCompressionKnownAnswer(t *testing.T) {
	for _, k := range mplKeys {
		der := unhex(t, k.public)
		pub, err := rawecdh.ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil {
			t.Fatalf("%s: %v", k.curve, err)
		}
		if got := rawecdh.Compressed(pub); !bytes.Equal(got, unhex(t, k.compr)) {
			t.Errorf("%s: compressed %x, want %s", k.curve, got, k.compr)
		}
		priv := parsePriv(t, k.private)
		if !priv.PublicKey().Equal(pub) || priv.Curve() != mustCurve(t, k.curve) {
			t.Errorf("%s: the private key's public key is not the SPKI", k.curve)
		}
		if name, err := rawecdh.CurveName(pub.Curve()); err != nil || name != k.curve {
			t.Errorf("CurveName = %q, %v; want %s", name, err, k.curve)
		}
	}
	if got := rawecdh.Compressed(genKey(t, ecdh.X25519()).PublicKey()); got != nil {
		t.Errorf("Compressed of an X25519 key = %x, want nil", got)
	}
}

// knownEDK is a raw-ecdh EDK built outside Go (Python cryptography 48:
// ECDH, KBKDFHMAC, AESGCM; the KDF output also checked with OpenSSL 3.0
// KBKDF) from the research layout: sender mplKeys[0], recipient
// katRecipientPEM, context {"purpose": "kat"}, salt 00..1f, data key 40..5f.
var knownEDK = envelope.EncryptedDataKey{
	ProviderID: "raw-ecdh",
	ProviderInfo: mustHex("01" + "00000021" + "0258c5ffc078446ed99dd5b43a24a650ecfdab6e1886d6ec81a19276cad8c3fe35" +
		"00000021" + "02a7520c7b4ab94784f227dcc7197dcddc108b3cf9715fec9be172e575c1610b19"),
	Ciphertext: mustHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + // salt
		"4685335e7d1a46e1bbb165f421fdc93e4589ab73df5411229aa1b3e7c0b55d25" + // commitment key
		"2420a21683574b6a14f1559047efb2d36bef3c1c368b3cfca53c766de0816a35" + // wrapped data key
		"8671e16e91d1387043e2533d662e73d4"), // tag
}

var knownContext = envelope.EncryptionContext{"purpose": "kat"}

func knownDEK() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = 0x40 + byte(i)
	}
	return k
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestKnownEDK opens the EDK built outside Go with every KEK that holds
// one of its private keys, and with Open directly.
func TestKnownEDK(t *testing.T) {
	sender, recipient := parsePriv(t, mplKeys[0].private), parsePriv(t, katRecipientPEM)
	for _, kek := range []*rawecdh.KEK{
		rawecdh.NewDiscovery(recipient),
		rawecdh.NewStatic(sender, recipient.PublicKey()), // its own orientation
		rawecdh.NewStatic(recipient, sender.PublicKey()), // the recipient's static keyring
	} {
		if !kek.Claims(knownEDK) {
			t.Fatalf("%v does not claim the EDK", kek)
		}
		got, err := kek.Unwrap(ctx, knownEDK, knownContext)
		if err != nil || !bytes.Equal(got, knownDEK()) {
			t.Fatalf("%v: %x, %v", kek, got, err)
		}
		kms := knownEDK
		kms.ProviderID = "aws-kms-ecdh" // same layout, another keyring: not ours
		if kek.Claims(kms) {
			t.Fatalf("%v claims an EDK of provider id %q", kek, kms.ProviderID)
		}
	}
	info, err := rawecdh.ParseInfo(knownEDK.ProviderInfo)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Sender.Equal(sender.PublicKey()) || !info.Recipient.Equal(recipient.PublicKey()) || info.Curve != ecdh.P256() {
		t.Fatal("ParseInfo: wrong keys or curve")
	}
	z, _ := recipient.ECDH(sender.PublicKey())
	if got, err := rawecdh.Open(z, info, knownEDK, knownContext); err != nil || !bytes.Equal(got, knownDEK()) {
		t.Fatalf("Open: %x, %v", got, err)
	}
}

// TestRoundTrips encrypts and decrypts through envelope.Encrypt/Decrypt on
// every curve and suite: ephemeral and static encrypt, discovery and
// static (both orientations) decrypt, with an encryption context.
func TestRoundTrips(t *testing.T) {
	pt := []byte("raw ecdh round trip")
	ec := envelope.EncryptionContext{"purpose": "test", "b": "c"}
	for _, name := range []string{"p256", "p384", "p521"} {
		c := mustCurve(t, name)
		r, s, other := genKey(t, c), genKey(t, c), genKey(t, c)
		for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
			for _, tc := range []struct {
				enc      *rawecdh.KEK
				open     []*rawecdh.KEK
				notClaim []*rawecdh.KEK
			}{
				{rawecdh.NewEphemeral(r.PublicKey()),
					[]*rawecdh.KEK{rawecdh.NewDiscovery(r)},
					[]*rawecdh.KEK{rawecdh.NewStatic(s, r.PublicKey()), rawecdh.NewDiscovery(other)}},
				{rawecdh.NewStatic(s, r.PublicKey()),
					[]*rawecdh.KEK{rawecdh.NewDiscovery(r), rawecdh.NewStatic(s, r.PublicKey()), rawecdh.NewStatic(r, s.PublicKey())},
					[]*rawecdh.KEK{rawecdh.NewDiscovery(s), rawecdh.NewStatic(s, other.PublicKey()), rawecdh.NewStatic(other, r.PublicKey())}},
			} {
				msg, err := envelope.Encrypt(ctx, pt, envelope.NewKeyring(tc.enc), envelope.EncryptOptions{Suite: suite, Context: ec})
				if err != nil {
					t.Fatalf("%s %v %v: %v", name, suite, tc.enc, err)
				}
				for _, kek := range tc.open {
					got, h, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(kek), envelope.DecryptOptions{})
					if err != nil || !bytes.Equal(got, pt) || h.Context["purpose"] != "test" {
						t.Fatalf("%s %v: %v -> %v: %v", name, suite, tc.enc, kek, err)
					}
				}
				for _, kek := range tc.notClaim {
					if _, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(kek), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrNoKEK) {
						t.Fatalf("%s %v: %v -> %v: %v, want ErrNoKEK", name, suite, tc.enc, kek, err)
					}
				}
			}
		}
	}
}

// TestContextBound: the KEK binds the context it is given; another one
// fails the commitment check, whichever key opens.
func TestContextBound(t *testing.T) {
	r := genKey(t, ecdh.P384())
	kek := rawecdh.NewDiscovery(r)
	edk, err := rawecdh.NewEphemeral(r.PublicKey()).Wrap(ctx, make([]byte, 32), envelope.EncryptionContext{"a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ec := range []envelope.EncryptionContext{nil, {"a": "2"}, {"a": "1", "b": "1"}} {
		if key, err := kek.Unwrap(ctx, edk, ec); !errors.Is(err, rawecdh.ErrCommitment) || key != nil {
			t.Errorf("context %v: %x, %v; want ErrCommitment", ec, key, err)
		}
	}
	if _, err := kek.Unwrap(ctx, edk, envelope.EncryptionContext{"a": "1"}); err != nil {
		t.Fatal(err)
	}
}

// TestRequiredContext: pairs the message does not store are bound by the
// KEK too (the envelope hands it the full context); decrypting with another
// value fails in the KEK's commitment check.
func TestRequiredContext(t *testing.T) {
	r, s := genKey(t, ecdh.P256()), genKey(t, ecdh.P256())
	ec := envelope.EncryptionContext{"stored": "x", "required": "y"}
	msg, err := envelope.Encrypt(ctx, []byte("pt"), envelope.NewKeyring(rawecdh.NewStatic(s, r.PublicKey())),
		envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA, Context: ec, RequiredContextKeys: []string{"required"}})
	if err != nil {
		t.Fatal(err)
	}
	kr := envelope.NewKeyring(rawecdh.NewDiscovery(r))
	if _, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{ReproducedContext: envelope.EncryptionContext{"required": "y"}}); err != nil {
		t.Fatal(err)
	}
	_, _, err = envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{ReproducedContext: envelope.EncryptionContext{"required": "z"}})
	if !errors.Is(err, rawecdh.ErrCommitment) {
		t.Fatalf("wrong required value: %v, want ErrCommitment", err)
	}
}

// TestSchemas: discovery does not wrap, ephemeral does not unwrap, each
// with ErrSchema and a message naming the schema.
func TestSchemas(t *testing.T) {
	r := genKey(t, ecdh.P256())
	_, err := rawecdh.NewDiscovery(r).Wrap(ctx, make([]byte, 32), nil)
	if !errors.Is(err, rawecdh.ErrSchema) || !strings.Contains(err.Error(), "decrypt-only") {
		t.Errorf("discovery Wrap: %v", err)
	}
	eph := rawecdh.NewEphemeral(r.PublicKey())
	edk, err := eph.Wrap(ctx, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !eph.Claims(edk) {
		t.Error("ephemeral does not claim an EDK to its recipient")
	}
	key, err := eph.Unwrap(ctx, edk, nil)
	if !errors.Is(err, rawecdh.ErrSchema) || !strings.Contains(err.Error(), "encrypt-only") || key != nil {
		t.Errorf("ephemeral Unwrap: %x, %v", key, err)
	}
	// Through the envelope, the failure names the schema.
	msg, err := envelope.Encrypt(ctx, []byte("x"), envelope.NewKeyring(eph), envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(eph), envelope.DecryptOptions{}); !errors.Is(err, rawecdh.ErrSchema) {
		t.Errorf("decrypt with ephemeral: %v", err)
	}
}

// TestUnusableKeys: constructors cannot fail, so KEKs of unusable keys claim
// nothing and fail every operation with ErrBadKey.
func TestUnusableKeys(t *testing.T) {
	p256, p384 := genKey(t, ecdh.P256()), genKey(t, ecdh.P384())
	x := genKey(t, ecdh.X25519())
	edk, _ := rawecdh.NewEphemeral(p256.PublicKey()).Wrap(ctx, make([]byte, 32), nil)
	for _, kek := range []*rawecdh.KEK{
		rawecdh.NewEphemeral(nil), rawecdh.NewEphemeral(x.PublicKey()),
		rawecdh.NewDiscovery(nil), rawecdh.NewDiscovery(x),
		rawecdh.NewStatic(nil, p256.PublicKey()), rawecdh.NewStatic(p256, nil),
		rawecdh.NewStatic(p256, p384.PublicKey()), rawecdh.NewStatic(x, x.PublicKey()),
	} {
		if _, err := kek.Wrap(ctx, make([]byte, 32), nil); !errors.Is(err, rawecdh.ErrBadKey) {
			t.Errorf("%v Wrap: %v", kek, err)
		}
		if key, err := kek.Unwrap(ctx, edk, nil); !errors.Is(err, rawecdh.ErrBadKey) || key != nil {
			t.Errorf("%v Unwrap: %v", kek, err)
		}
		if kek.Claims(edk) || kek.PublicKey() != nil || kek.Curve() != nil {
			t.Errorf("%v claims an EDK or has a key", kek)
		}
	}
}

// info builds provider info field by field.
func info(ver byte, rl uint32, r []byte, sl uint32, s []byte) []byte {
	b := []byte{ver}
	b = binary.BigEndian.AppendUint32(b, rl)
	b = append(b, r...)
	b = binary.BigEndian.AppendUint32(b, sl)
	return append(b, s...)
}

// offCurveX returns a compressed-length point x-coordinate below the field
// prime for which y² = x³ - 3x + b has no solution (found with a Jacobi
// symbol, independently of the code under test).
func offCurveX(c elliptic.Curve) []byte {
	p := c.Params()
	for x := big.NewInt(1); ; x.Add(x, big.NewInt(1)) {
		rhs := new(big.Int).Exp(x, big.NewInt(3), p.P)
		rhs.Sub(rhs, new(big.Int).Mul(x, big.NewInt(3)))
		rhs.Add(rhs, p.B)
		rhs.Mod(rhs, p.P)
		if big.Jacobi(rhs, p.P) == -1 {
			return x.FillBytes(make([]byte, (p.BitSize+7)/8))
		}
	}
}

// TestBadInfo: every malformed provider info is refused by ParseInfo with
// ErrMalformed and no info, is not claimed, and fails Unwrap.
func TestBadInfo(t *testing.T) {
	r, s := genKey(t, ecdh.P256()), genKey(t, ecdh.P256())
	rc, sc := rawecdh.Compressed(r.PublicKey()), rawecdh.Compressed(s.PublicKey())
	offX := offCurveX(elliptic.P256())
	fieldP := elliptic.P256().Params().P.FillBytes(make([]byte, 32))
	p384 := rawecdh.Compressed(genKey(t, ecdh.P384()).PublicKey())
	good := info(1, 33, rc, 33, sc)
	with := func(i int, b byte) []byte { c := bytes.Clone(good); c[i] = b; return c }
	for _, tc := range []struct {
		name, want string
		info       []byte
	}{
		{"empty", "0 bytes", nil},
		{"truncated to the version", "1 bytes", good[:1]},
		{"truncated by one byte", "74 bytes", good[:74]},
		{"one byte too many", "76 bytes", append(bytes.Clone(good), 0)},
		{"absurd length", "1048576 bytes", make([]byte, 1<<20)},
		{"version 0x02", "version 0x02", with(0, 2)},
		{"version 0x00", "version 0x00", with(0, 0)},
		{"recipient length past the end", "recipient key length field 4294967295", info(1, 0xFFFFFFFF, rc, 33, sc)},
		{"recipient length 34", "recipient key length field 34", info(1, 34, rc, 33, sc)},
		{"recipient length 32", "recipient key length field 32", info(1, 32, rc, 33, sc)},
		{"sender length past the end", "sender key length field 1000", info(1, 33, rc, 1000, sc)},
		{"P-384 keys in a P-256 length", "recipient key length field 49", info(1, 49, p384, 49, p384)[:75]},
		{"P-256 recipient, P-384 sender", "91 bytes", info(1, 33, rc, 49, p384)},
		{"infinity as recipient", "recipient key: not a compressed point", info(1, 33, make([]byte, 33), 33, sc)},
		{"uncompressed prefix 0x04", "sender key: not a compressed point", info(1, 33, rc, 33, append([]byte{4}, sc[1:]...))},
		{"prefix 0x05", "recipient key: not a compressed point", info(1, 33, append([]byte{5}, rc[1:]...), 33, sc)},
		{"off-curve recipient", "recipient key: not a point on the curve", info(1, 33, append([]byte{2}, offX...), 33, sc)},
		{"off-curve sender", "sender key: not a point on the curve", info(1, 33, rc, 33, append([]byte{3}, offX...))},
		{"x = field prime", "recipient key: not a point on the curve", info(1, 33, append([]byte{2}, fieldP...), 33, sc)},
	} {
		got, err := rawecdh.ParseInfo(tc.info)
		if !errors.Is(err, rawecdh.ErrMalformed) || got != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want ErrMalformed saying %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := rawecdh.ParseInfo(good); err != nil {
		t.Fatalf("the unaltered info: %v", err)
	}
	// The KEKs refuse an EDK whose recipient slot holds their key but whose
	// sender is not a point.
	edk := envelope.EncryptedDataKey{ProviderID: rawecdh.ProviderID, ProviderInfo: info(1, 33, rc, 33, append([]byte{2}, offX...)), Ciphertext: make([]byte, 112)}
	if key, err := rawecdh.NewDiscovery(r).Unwrap(ctx, edk, nil); !errors.Is(err, rawecdh.ErrMalformed) || key != nil {
		t.Errorf("discovery Unwrap of an off-curve sender: %v", err)
	}
}

// TestWrongCurve: EDKs of another curve are neither claimed nor unwrapped,
// and Seal and Open refuse keys and secrets of mixed curves.
func TestWrongCurve(t *testing.T) {
	r256, r384 := genKey(t, ecdh.P256()), genKey(t, ecdh.P384())
	edk384, err := rawecdh.NewEphemeral(r384.PublicKey()).Wrap(ctx, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	kek := rawecdh.NewDiscovery(r256)
	if kek.Claims(edk384) {
		t.Error("a P-256 KEK claims a P-384 EDK")
	}
	if key, err := kek.Unwrap(ctx, edk384, nil); !errors.Is(err, rawecdh.ErrBadKey) || key != nil || !strings.Contains(err.Error(), "the EDK is not for") {
		t.Errorf("P-256 Unwrap of a P-384 EDK: %v", err)
	}
	// Nor does a KEK unwrap an EDK of other keys on its own curve.
	s256 := genKey(t, ecdh.P256())
	edk256, _ := rawecdh.NewStatic(s256, genKey(t, ecdh.P256()).PublicKey()).Wrap(ctx, make([]byte, 32), nil)
	for _, k := range []*rawecdh.KEK{kek, rawecdh.NewStatic(s256, r256.PublicKey())} {
		if key, err := k.Unwrap(ctx, edk256, nil); !errors.Is(err, rawecdh.ErrBadKey) || key != nil || !strings.Contains(err.Error(), "the EDK is not for") {
			t.Errorf("%v Unwrap of an EDK to another key: %v", k, err)
		}
	}
	z := make([]byte, 32)
	if _, err := rawecdh.Seal(z, r256.PublicKey(), r384.PublicKey(), make([]byte, 32), nil); !errors.Is(err, rawecdh.ErrBadKey) {
		t.Errorf("Seal with keys on two curves: %v", err)
	}
	info384, _ := rawecdh.ParseInfo(edk384.ProviderInfo)
	if key, err := rawecdh.Open(z, info384, edk384, nil); !errors.Is(err, rawecdh.ErrBadKey) || key != nil || !strings.Contains(err.Error(), "p384 x-coordinate is 48") {
		t.Errorf("Open with a 32-byte secret on P-384: %v", err)
	}
	mixed := &rawecdh.Info{Curve: ecdh.P384(), Recipient: r384.PublicKey(), Sender: r256.PublicKey()}
	if key, err := rawecdh.Open(make([]byte, 48), mixed, edk384, nil); !errors.Is(err, rawecdh.ErrMalformed) || key != nil {
		t.Errorf("Open with an info of mixed curves: %v", err)
	}
}

// TestBadCiphertext: a wrong key, a wrong context, a tampered wrapped key
// or tag, and ciphertexts of wrong lengths all fail Open with a sentinel
// and no key.
func TestBadCiphertext(t *testing.T) {
	r, s, other := genKey(t, ecdh.P256()), genKey(t, ecdh.P256()), genKey(t, ecdh.P256())
	ec := envelope.EncryptionContext{"k": "v"}
	z, _ := s.ECDH(r.PublicKey())
	edk, err := rawecdh.Seal(z, s.PublicKey(), r.PublicKey(), knownDEK(), ec)
	if err != nil {
		t.Fatal(err)
	}
	if len(edk.Ciphertext) != 112 || len(edk.ProviderInfo) != 75 || edk.ProviderID != "raw-ecdh" {
		t.Fatalf("EDK layout: %d-byte ciphertext, %d-byte info, id %q", len(edk.Ciphertext), len(edk.ProviderInfo), edk.ProviderID)
	}
	inf, err := rawecdh.ParseInfo(edk.ProviderInfo)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rawecdh.Open(z, inf, edk, ec); err != nil || !bytes.Equal(got, knownDEK()) {
		t.Fatalf("unaltered EDK: %v", err)
	}
	wrongZ, _ := other.ECDH(r.PublicKey())
	flip := func(i int) envelope.EncryptedDataKey {
		e := edk
		e.Ciphertext = bytes.Clone(edk.Ciphertext)
		e.Ciphertext[i] ^= 1
		return e
	}
	sized := func(n int) envelope.EncryptedDataKey {
		e := edk
		e.Ciphertext = make([]byte, n)
		copy(e.Ciphertext, edk.Ciphertext)
		return e
	}
	for _, tc := range []struct {
		name string
		z    []byte
		edk  envelope.EncryptedDataKey
		ec   envelope.EncryptionContext
		want error
	}{
		{"wrong key", wrongZ, edk, ec, rawecdh.ErrCommitment},
		{"wrong context", z, edk, envelope.EncryptionContext{"k": "w"}, rawecdh.ErrCommitment},
		{"empty context", z, edk, nil, rawecdh.ErrCommitment},
		{"tampered salt", z, flip(0), ec, rawecdh.ErrCommitment},
		{"tampered commitment key", z, flip(40), ec, rawecdh.ErrCommitment},
		{"tampered wrapped key", z, flip(64), ec, rawecdh.ErrMalformed},
		{"tampered tag", z, flip(111), ec, rawecdh.ErrMalformed},
		{"empty", z, sized(0), ec, rawecdh.ErrMalformed},
		{"salt and commitment only", z, sized(64), ec, rawecdh.ErrMalformed},
		{"no tag", z, sized(96 - 16), ec, rawecdh.ErrMalformed},
		{"one byte short", z, sized(111), ec, rawecdh.ErrMalformed},
		{"one byte long", z, sized(113), ec, rawecdh.ErrMalformed},
		{"absurd length", z, sized(1 << 20), ec, rawecdh.ErrMalformed},
		{"another provider id", z, envelope.EncryptedDataKey{ProviderID: "aws-kms-ecdh", ProviderInfo: edk.ProviderInfo, Ciphertext: edk.Ciphertext}, ec, rawecdh.ErrMalformed},
		{"short secret", z[:31], edk, ec, rawecdh.ErrBadKey},
	} {
		key, err := rawecdh.Open(tc.z, inf, tc.edk, tc.ec)
		if !errors.Is(err, tc.want) || key != nil {
			t.Errorf("%s: %x, %v; want %v", tc.name, key, err, tc.want)
		}
	}
	// An info that is not the EDK's is refused before anything is derived.
	otherInfo := &rawecdh.Info{Curve: ecdh.P256(), Recipient: r.PublicKey(), Sender: other.PublicKey()}
	if key, err := rawecdh.Open(z, otherInfo, edk, ec); !errors.Is(err, rawecdh.ErrMalformed) || key != nil {
		t.Errorf("Open with another EDK's info: %v", err)
	}
	if key, err := rawecdh.Open(z, nil, edk, ec); !errors.Is(err, rawecdh.ErrMalformed) || key != nil {
		t.Errorf("Open with no info: %v", err)
	}
}

// TestSealChecks: Seal refuses what it cannot wrap, and wraps the data key
// sizes of the ESDK suites.
func TestSealChecks(t *testing.T) {
	r, s := genKey(t, ecdh.P521()), genKey(t, ecdh.P521())
	z, _ := s.ECDH(r.PublicKey())
	if len(z) != 66 {
		t.Fatalf("P-521 secret of %d bytes", len(z))
	}
	for _, n := range []int{16, 24, 32} {
		edk, err := rawecdh.Seal(z, s.PublicKey(), r.PublicKey(), make([]byte, n), nil)
		if err != nil || len(edk.Ciphertext) != 64+n+16 || len(edk.ProviderInfo) != 143 {
			t.Fatalf("%d-byte data key: %v", n, err)
		}
		inf, _ := rawecdh.ParseInfo(edk.ProviderInfo)
		if got, err := rawecdh.Open(z, inf, edk, nil); err != nil || len(got) != n {
			t.Fatalf("%d-byte data key open: %v", n, err)
		}
	}
	for _, tc := range []struct {
		name   string
		z, dek []byte
		s, r   *ecdh.PublicKey
	}{
		{"no sender", z, make([]byte, 32), nil, r.PublicKey()},
		{"no recipient", z, make([]byte, 32), s.PublicKey(), nil},
		{"X25519 keys", z, make([]byte, 32), genKey(t, ecdh.X25519()).PublicKey(), r.PublicKey()},
		{"short secret", z[:65], make([]byte, 32), s.PublicKey(), r.PublicKey()},
		{"empty data key", z, nil, s.PublicKey(), r.PublicKey()},
		{"33-byte data key", z, make([]byte, 33), s.PublicKey(), r.PublicKey()},
	} {
		if _, err := rawecdh.Seal(tc.z, tc.s, tc.r, tc.dek, nil); !errors.Is(err, rawecdh.ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", tc.name, err)
		}
	}
	bad := envelope.EncryptionContext{"k": string([]byte{0xff})}
	if _, err := rawecdh.Seal(z, s.PublicKey(), r.PublicKey(), make([]byte, 32), bad); !errors.Is(err, envelope.ErrContext) {
		t.Errorf("invalid context: %v", err)
	}
}

// TestSaltFresh: two wraps of the same key under a static pair differ (a
// fresh salt each time, so a fresh wrapping key under the zero IV).
func TestSaltFresh(t *testing.T) {
	r, s := genKey(t, ecdh.P256()), genKey(t, ecdh.P256())
	kek := rawecdh.NewStatic(s, r.PublicKey())
	a, _ := kek.Wrap(ctx, knownDEK(), nil)
	b, _ := kek.Wrap(ctx, knownDEK(), nil)
	if bytes.Equal(a.Ciphertext[:32], b.Ciphertext[:32]) || bytes.Equal(a.Ciphertext[64:], b.Ciphertext[64:]) {
		t.Fatal("two static wraps share a salt or a ciphertext")
	}
	if !bytes.Equal(a.ProviderInfo, b.ProviderInfo) {
		t.Fatal("static wraps carry different provider info")
	}
}

// TestKEKDescribes: String names curve, schema and keys; PublicKey is
// what a peer encrypts to.
func TestKEKDescribes(t *testing.T) {
	r, s := parsePriv(t, katRecipientPEM), parsePriv(t, mplKeys[0].private)
	for _, tc := range []struct {
		kek  *rawecdh.KEK
		str  string
		pub  *ecdh.PublicKey
		name string
	}{
		{rawecdh.NewEphemeral(r.PublicKey()), "raw-ecdh:curve=p256;schema=ephemeral (recipient 0258c5ffc078446ed9…)", r.PublicKey(), "ephemeral"},
		{rawecdh.NewDiscovery(r), "raw-ecdh:curve=p256;schema=discovery (recipient 0258c5ffc078446ed9…)", r.PublicKey(), "discovery"},
		{rawecdh.NewStatic(s, r.PublicKey()), "raw-ecdh:curve=p256;schema=static (sender 02a7520c7b4ab94784…, recipient 0258c5ffc078446ed9…)", s.PublicKey(), "static"},
	} {
		if got := tc.kek.String(); got != tc.str {
			t.Errorf("%s String = %q, want %q", tc.name, got, tc.str)
		}
		if !tc.kek.PublicKey().Equal(tc.pub) || tc.kek.Curve() != ecdh.P256() {
			t.Errorf("%s PublicKey or Curve", tc.name)
		}
	}
}

// TestCurveNames: the three names, and errors for the others.
func TestCurveNames(t *testing.T) {
	for name, c := range map[string]ecdh.Curve{"p256": ecdh.P256(), "p384": ecdh.P384(), "p521": ecdh.P521()} {
		if got, err := rawecdh.Curve(name); err != nil || got != c {
			t.Errorf("Curve(%q) = %v, %v", name, got, err)
		}
	}
	for _, name := range []string{"", "P256", "p-256", "x25519", "sm2", "p512"} {
		if _, err := rawecdh.Curve(name); !errors.Is(err, rawecdh.ErrBadKey) {
			t.Errorf("Curve(%q): %v", name, err)
		}
	}
	if _, err := rawecdh.CurveName(ecdh.X25519()); !errors.Is(err, rawecdh.ErrBadKey) {
		t.Errorf("CurveName(X25519): %v", err)
	}
}
