package rawecdh

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKDFVectors checks the counter-mode KDF against NIST SP 800-108
// vectors for HMAC-SHA384, counter before the fixed input, 32-bit counter.
func TestKDFVectors(t *testing.T) {
	for _, v := range []struct{ name, ki, fixed, ko string }{
		// NIST CAVP KBKDF, KDFCTR_gen.rsp (CAVS 14.4, CounterMode.zip from
		// csrc.nist.gov, as mirrored in github.com/coruus/nist-testvectors),
		// [PRF=HMAC_SHA384] [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS].
		{"CAVP COUNT=0 L=128",
			"216ed044769c4c3908188ece61601af8819c30f501d12995df608e06f5e0e607ab54f542ee2da41906dfdb4971f20f9d",
			"638e9506a2c7be69ea346b84629a010c0e225b7548f508162c89f29c1ddbfd70472c2b58e7dc8aa6a5b06602f1c8ed4948cda79c62708218e26ac0e2",
			"d4b144bb40c7cabed13963d7d4318e72"},
		{"CAVP COUNT=10 L=256",
			"8fca201473433f2dc8f6ae51e48de1a5654ce687e711d2d65f0dc5da6fee9a6a3db9d8535d3e4455ab53d35850c88272",
			"195bd88aa2d4211912334fe2fd9bd24522f7d9fb08e04747609bc34f2538089a9d28bbc70b2e1336c3643753cec6e5cd3f246caa915e3c3a6b94d3b6",
			"f51ac86b0f462388d189ed0197ef99c2ff3a65816d8442e5ea304397b98dd11f"},
		{"CAVP COUNT=20 L=160",
			"bc3157b8932e88d1b1cf8e4622137010a242d3527b1d23d6d9c0db9cc9edfc20e5135de823977bf4defafae44d6cdab6",
			"b42a8e43cc2d4e5c69ee5e4f6b19ff6b8071d26bab4dfe45650b92b1f47652d25162d4b61441d8448c54918ae568ae2fb53091c624dbfffacee51d88",
			"91314bdf542162031643247d6507838eaba50f1a"},
		{"CAVP COUNT=30 L=320",
			"582f968a54b8797b9ea8c655b42e397adb73d773b1984b1e1c429cd597b8015d2f91d59e4136a9d523bf6491a4733c7a",
			"e6d3c193eff34e34f8b7b00e66565aeb01f63206bb27e27aa281592afc06ae1ec5b7eb97a39684ce773d7c3528f2667c1f5d428406e78ce4cf39f652",
			"691726c111e5030b5f9657069107861ecc18bc5835a814c3d2e5092c901cb1fb6c1a7cd3eb0be2a7"},
		// MPL AwsCryptographyPrimitives/test/TestKDF_TestVectors.dfy, b6
		// ("B.6 Test Case 6", SHA_384, RawDerive), decimal there.
		{"MPL B.6",
			"822c764a1b117085c10f0e689814d2bfbd9b43287f1a8c75d795a9831a286184c8586f3577b6e5bbce1637925e04fc47",
			"af346110b941b11d2189316c9fc2b9f4213775a5d7368d35412678a28fcd03b07f0549666efdf30c80f0ab5563720a56ef616a13bb8f7780036fc08e",
			"e0ae235cb82380527be76934a69622396d90e7bfa7e2d295e4375bcee0d1b101"},
	} {
		ko := unhex(t, v.ko)
		if got := counterKDF(unhex(t, v.ki), unhex(t, v.fixed), len(ko)); !bytes.Equal(got, ko) {
			t.Errorf("%s: got %x, want %x", v.name, got, ko)
		}
	}
}

// The P-256 key pair of the known-answer EDK: sender = the MPL's
// TestECDH.dfy ECC_P256_PRIVATE (also keys.json ecc-256-private
// sender-material), recipient = keys.json ecc-256-private
// recipient-material (ESDK TestVectors/dafny/TestVectors/test/keys.json).
const (
	katSenderCompressed    = "02a7520c7b4ab94784f227dcc7197dcddc108b3cf9715fec9be172e575c1610b19"
	katRecipientCompressed = "0258c5ffc078446ed99dd5b43a24a650ecfdab6e1886d6ec81a19276cad8c3fe35"
	// z = ECDH(sender, recipient), the x-coordinate.
	katZ = "96c10772505c8cc60f842c6610a8486615cbe1e0f1def98e4b082cddf2713d1f"
)

// TestFixedInfoByHand checks FixedInfo against the layout of the MPL's
// SerializeFixedInfo (research §1.4) written out byte by byte.
func TestFixedInfoByHand(t *testing.T) {
	sender, recipient := unhex(t, katSenderCompressed), unhex(t, katRecipientCompressed)
	want := unhex(t, ""+
		"656364682d6b65792d64657269766174696f6e"+ // "ecdh-key-derivation"
		"00"+
		"70323536"+ // "p256"
		"00"+
		"484d41435f534841333834"+ // "HMAC_SHA384"
		"00"+
		katSenderCompressed+katRecipientCompressed+ // sender, then recipient, no separator
		"00"+"01"+"00") // keyring version 0x01 between null bytes; empty context: nothing
	got := fixedInfo(&curves[0], sender, recipient, nil)
	if !bytes.Equal(got, want) || len(got) != 106 {
		t.Fatalf("FixedInfo (%d bytes):\n got %x\nwant %x", len(got), got, want)
	}
	// With a context: its canonical form follows, no length before it.
	ctx := unhex(t, "0001"+"0007"+"707572706f7365"+"0003"+"6b6174") // {"purpose": "kat"}
	if got := fixedInfo(&curves[0], sender, recipient, ctx); !bytes.Equal(got, append(want, ctx...)) {
		t.Fatalf("FixedInfo with context: %x", got)
	}
	// P-384 and P-521: 138 and 174 bytes without a context.
	for i, n := range map[int]int{1: 138, 2: 174} {
		k := make([]byte, curves[i].compressedLen())
		if got := fixedInfo(&curves[i], k, k, nil); len(got) != n || !bytes.Contains(got, []byte("\x00"+curves[i].name+"\x00")) {
			t.Errorf("%s FixedInfo is %d bytes, want %d", curves[i].name, len(got), n)
		}
	}
}

// TestDeriveKeysKnownAnswer checks the whole derivation (fixed input data =
// FixedInfo || 0x00 || salt || u32 512, two HMAC blocks) against an output
// computed twice outside Go: with Python cryptography 48's KBKDFHMAC
// (SHA384, CounterMode, rlen=4, llen=4, BeforeFixed, label=FixedInfo,
// context=salt) and with OpenSSL 3.0's
//
//	openssl kdf -keylen 64 -kdfopt mode:COUNTER -kdfopt mac:HMAC -kdfopt digest:SHA384 \
//	  -kdfopt hexkey:Z -kdfopt hexsalt:FIXEDINFO -kdfopt hexinfo:SALT KBKDF
func TestDeriveKeysKnownAnswer(t *testing.T) {
	ctx := unhex(t, "0001000770757270"+"6f736500036b6174")
	fixed := fixedInfo(&curves[0], unhex(t, katSenderCompressed), unhex(t, katRecipientCompressed), ctx)
	salt := make([]byte, 32)
	for i := range salt {
		salt[i] = byte(i)
	}
	want := unhex(t, "4685335e7d1a46e1bbb165f421fdc93e4589ab73df5411229aa1b3e7c0b55d25"+ // commitment key
		"b8ed3d0193c61a888e7632f13cfd7ba4be870eaddc2b722e9dea3571e1319a0c") // wrapping key
	if got := deriveKeys(unhex(t, katZ), fixed, salt); !bytes.Equal(got, want) {
		t.Fatalf("derived\n got %x\nwant %x", got, want)
	}
}

// TestInfoLengths checks the provider info lengths of the three curves.
func TestInfoLengths(t *testing.T) {
	for i, n := range []int{75, 107, 143} {
		if got := curves[i].infoLen(); got != n {
			t.Errorf("%s provider info length %d, want %d", curves[i].name, got, n)
		}
	}
}
