package envelope_test

// Tamper tests: every bit flip, every truncation, trailing bytes and a set of
// deliberate forgeries must each be refused with an error that wraps one of
// the package's sentinels, and no path (Decrypt, the streaming Decrypter,
// OpenRange) may ever hand out a byte of plaintext that is not the true one.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// ---------------------------------------------------------------------------
// Sentinels

var tamperSentinels = []struct {
	name string
	err  error
}{
	{"ErrMalformed", envelope.ErrMalformed},
	{"ErrTruncated", envelope.ErrTruncated},
	{"ErrUnsupported", envelope.ErrUnsupported},
	{"ErrHeaderAuth", envelope.ErrHeaderAuth},
	{"ErrCommitment", envelope.ErrCommitment},
	{"ErrFrameAuth", envelope.ErrFrameAuth},
	{"ErrSignature", envelope.ErrSignature},
	{"ErrNoKEK", envelope.ErrNoKEK},
	{"ErrContext", envelope.ErrContext},
	{"ErrTooManyEDKs", envelope.ErrTooManyEDKs},
	{"ErrCommitmentPolicy", envelope.ErrCommitmentPolicy},
	{"ErrRange", envelope.ErrRange},
	{"ErrClosed", envelope.ErrClosed},
}

// sentinelName returns the names of the sentinels err wraps, joined by "+",
// or "NONE".
func sentinelName(err error) string {
	var names []string
	for _, s := range tamperSentinels {
		if errors.Is(err, s.err) {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, "+")
}

// checkOneSentinel fails unless err wraps exactly one sentinel.
func checkOneSentinel(t testing.TB, what string, err error) {
	t.Helper()
	if name := sentinelName(err); name == "NONE" || strings.Contains(name, "+") {
		t.Errorf("%s: error wraps %s sentinels, want exactly one: %v", what, name, err)
	}
}

// ---------------------------------------------------------------------------
// Keys and fixtures

type tamperKeyset struct {
	kr    *envelope.Keyring // raw AES then raw RSA: every message has 2 EDKs
	aes   *envelope.Keyring // the raw AES KEK alone
	other *envelope.Keyring // an unrelated raw AES KEK with the same names
}

var tamperKeys = sync.OnceValues(func() (*tamperKeyset, error) {
	newAES := func() (*rawaes.KEK, error) {
		key := make([]byte, 32)
		rand.Read(key)
		return rawaes.New("tamper", "aes-kek", key)
	}
	ak, err := newAES()
	if err != nil {
		return nil, err
	}
	ok, err := newAES()
	if err != nil {
		return nil, err
	}
	// 1024 bits keeps the RSA fallback cheap under -race; the size is
	// irrelevant to what is tested here.
	priv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return nil, err
	}
	rk, err := rawrsa.New("tamper", "rsa-kek", nil, priv, rawrsa.OAEPSHA256)
	if err != nil {
		return nil, err
	}
	ks := &tamperKeyset{}
	ks.kr = envelope.NewKeyring(ak, rk)
	ks.aes = envelope.NewKeyring(ak)
	ks.other = envelope.NewKeyring(ok)
	return ks, nil
})

func mustTamperKeys(t testing.TB) *tamperKeyset {
	t.Helper()
	ks, err := tamperKeys()
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var tamperContext = envelope.EncryptionContext{"purpose": "tamper-test", "ключ": "値"}

const tamperFrame = 64

type tamperCase struct {
	name  string
	suite envelope.SuiteID
	pt    []byte
	msg   []byte
}

func (c tamperCase) signed() bool { return c.suite == envelope.SuiteCommitECDSA }

// tamperCases encrypts 0, 1, 100 and 300 bytes under both suites with 64-byte
// frames, the two-KEK keyring and a non-empty context.
func tamperCases(t testing.TB, kr *envelope.Keyring) []tamperCase {
	t.Helper()
	var cases []tamperCase
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		for _, n := range []int{0, 1, 100, 300} {
			pt := randBytes(n)
			msg, err := envelope.Encrypt(context.Background(), pt, kr, envelope.EncryptOptions{
				Suite: suite, FrameSize: tamperFrame, Context: tamperContext})
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, tamperCase{name: fmt.Sprintf("%v/n%d", suite, n), suite: suite, pt: pt, msg: msg})
		}
	}
	return cases
}

// ---------------------------------------------------------------------------
// Message layout, to name the region a mutated byte belongs to

type tamperSpan struct {
	name       string
	start, end int
}

// tamperLayout splits a v2 framed message into named regions. Regions of
// the same kind (every regular frame's tag, say) share a name.
func tamperLayout(t testing.TB, msg []byte, edkNames []string) []tamperSpan {
	t.Helper()
	var spans []tamperSpan
	off := 0
	add := func(name string, n int) []byte {
		if off+n > len(msg) {
			t.Fatalf("layout: %s runs past the message", name)
		}
		spans = append(spans, tamperSpan{name, off, off + n})
		b := msg[off : off+n]
		off += n
		return b
	}
	u16 := func(name string) int { return int(binary.BigEndian.Uint16(add(name, 2))) }
	add("header: version", 1)
	add("header: suite id", 2)
	add("header: message id", 32)
	add("header: context", u16("header: context length"))
	count := u16("header: EDK count")
	for i := 0; i < count; i++ {
		name := fmt.Sprintf("EDK %d", i+1)
		if i < len(edkNames) {
			name += " (" + edkNames[i] + ")"
		}
		add(name+" provider id", u16("EDK length fields"))
		add(name+" provider info", u16("EDK length fields"))
		add(name+" ciphertext", u16("EDK length fields"))
	}
	add("header: content type", 1)
	frameLen := int(binary.BigEndian.Uint32(add("header: frame length", 4)))
	add("header: commit key", 32)
	add("header: auth tag", 16)
	for {
		if binary.BigEndian.Uint32(msg[off:]) == 0xFFFFFFFF {
			add("final frame: marker", 4)
			add("final frame: seq", 4)
			add("final frame: IV", 12)
			n := int(binary.BigEndian.Uint32(add("final frame: length", 4)))
			add("final frame: ciphertext", n)
			add("final frame: tag", 16)
			break
		}
		add("frame: seq", 4)
		add("frame: IV", 12)
		add("frame: ciphertext", frameLen)
		add("frame: tag", 16)
	}
	if off < len(msg) {
		add("footer: signature", u16("footer: signature length"))
	}
	if off != len(msg) {
		t.Fatalf("layout: %d bytes left after the footer", len(msg)-off)
	}
	return spans
}

func regionOf(spans []tamperSpan, i int) tamperSpan {
	for _, s := range spans {
		if i >= s.start && i < s.end {
			return s
		}
	}
	return tamperSpan{name: "?"}
}

// ---------------------------------------------------------------------------
// The three decryption paths on one (bad) message

// tamperResult is what each path said about a message.
type tamperResult struct {
	decrypt, stream, rng error
}

// decryptAllPaths runs Decrypt, the streaming Decrypter and (if withRange)
// OpenRange + a full ReadAt on msg. Each path must fail; bytes released
// before the failure must be a prefix of truePT. Errors are reported on t.
func decryptAllPaths(t testing.TB, what string, kr *envelope.Keyring, opts envelope.DecryptOptions, msg, truePT []byte, withStream, withRange bool) tamperResult {
	t.Helper()
	ctx := context.Background()
	var res tamperResult

	// (a) Decrypt: an error and nothing else.
	pt, h, err := envelope.Decrypt(ctx, msg, kr, opts)
	if err == nil {
		t.Errorf("%s: Decrypt accepted the message (%d bytes of plaintext, equal to the original: %v)", what, len(pt), bytes.Equal(pt, truePT))
	} else if pt != nil || h != nil {
		t.Errorf("%s: Decrypt failed (%v) but returned %d bytes of plaintext and header %v", what, err, len(pt), h != nil)
	}
	res.decrypt = err

	// (b) Streaming: whatever Read returned before the error must be true
	// plaintext.
	if withStream {
		sopts := opts
		sopts.Concurrency = 1
		d, err := envelope.NewDecrypter(ctx, bytes.NewReader(msg), kr, sopts)
		if err == nil {
			var out []byte
			out, err = io.ReadAll(d)
			if !bytes.HasPrefix(truePT, out) {
				t.Errorf("%s: the stream released %d bytes that are not the plaintext before failing with %v", what, len(out), err)
			}
			if err == nil {
				t.Errorf("%s: the stream decrypter accepted the message", what)
			} else if _, err2 := d.Read(make([]byte, 1)); err2 == nil || err2 == io.EOF {
				t.Errorf("%s: Read after the error %v returned %v", what, err, err2)
			}
			d.Close()
		}
		res.stream = err
	}

	// (c) Ranged: OpenRange may succeed (it checks only the header and final
	// frame), but reading every byte must fail, and bytes before must be true.
	if withRange {
		rr, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), kr, opts)
		if err == nil {
			if rr.Size() > int64(len(truePT)) {
				t.Errorf("%s: OpenRange accepted a plaintext size of %d, true size %d", what, rr.Size(), len(truePT))
			}
			var out []byte
			out, err = io.ReadAll(io.NewSectionReader(rr, 0, rr.Size()))
			if !bytes.HasPrefix(truePT, out) {
				t.Errorf("%s: ReadAt released %d bytes that are not the plaintext (error %v)", what, len(out), err)
			}
			if err == nil {
				t.Errorf("%s: OpenRange and ReadAt over the whole range accepted the message", what)
			}
			rr.Close()
		}
		res.rng = err
	}
	return res
}

// ---------------------------------------------------------------------------
// Bit flips

// flipRegions lists the regions of a message in order with the sentinels a
// flip there may give, for unsigned and for signed messages. A flip that
// turns a field into another plausible value must still fail on
// authentication, so each list is short. In a signed message the footer
// signature is verified before any frame is decrypted, so a flipped frame
// byte that keeps the structure gives ErrSignature.
var flipRegions = []struct {
	region           string
	unsigned, signed []string
}{
	{"header: version", []string{"ErrUnsupported"}, nil},
	{"header: suite id", []string{"ErrUnsupported", "ErrMalformed"}, nil},
	{"header: message id", []string{"ErrCommitment"}, nil},
	{"header: context length", []string{"ErrMalformed", "ErrTruncated"}, nil},
	{"header: context", []string{"ErrMalformed", "ErrHeaderAuth"}, nil},
	{"header: EDK count", []string{"ErrMalformed", "ErrTruncated", "ErrTooManyEDKs"}, nil},
	{"EDK length fields", []string{"ErrMalformed", "ErrTruncated"}, nil},
	{"EDK 1 (raw AES) provider id", []string{"ErrHeaderAuth"}, nil},
	{"EDK 1 (raw AES) provider info", []string{"ErrHeaderAuth"}, nil},
	{"EDK 1 (raw AES) ciphertext", []string{"ErrHeaderAuth"}, nil},
	{"EDK 2 (raw RSA) provider id", []string{"ErrHeaderAuth"}, nil},
	{"EDK 2 (raw RSA) provider info", []string{"ErrHeaderAuth"}, nil},
	{"EDK 2 (raw RSA) ciphertext", []string{"ErrHeaderAuth"}, nil},
	{"header: content type", []string{"ErrMalformed"}, nil},
	{"header: frame length", []string{"ErrMalformed", "ErrHeaderAuth"}, nil},
	{"header: commit key", []string{"ErrCommitment"}, nil},
	{"header: auth tag", []string{"ErrHeaderAuth"}, nil},
	{"frame: seq", []string{"ErrMalformed"}, nil},
	{"frame: IV", []string{"ErrMalformed"}, []string{"ErrSignature"}},
	{"frame: ciphertext", []string{"ErrFrameAuth"}, []string{"ErrSignature"}},
	{"frame: tag", []string{"ErrFrameAuth"}, []string{"ErrSignature"}},
	{"final frame: marker", []string{"ErrMalformed"}, nil},
	{"final frame: seq", []string{"ErrMalformed"}, nil},
	{"final frame: IV", []string{"ErrMalformed"}, []string{"ErrSignature"}},
	{"final frame: length", []string{"ErrMalformed", "ErrTruncated"}, []string{"ErrMalformed", "ErrTruncated", "ErrSignature"}},
	{"final frame: ciphertext", []string{"ErrFrameAuth"}, []string{"ErrSignature"}},
	{"final frame: tag", []string{"ErrFrameAuth"}, []string{"ErrSignature"}},
	{"footer: signature length", nil, []string{"ErrTruncated", "ErrSignature", "ErrMalformed"}},
	{"footer: signature", nil, []string{"ErrSignature"}},
}

func flipAllowed(region string, signed bool) ([]string, bool) {
	for _, r := range flipRegions {
		if r.region == region {
			if signed && r.signed != nil {
				return r.signed, true
			}
			return r.unsigned, true
		}
	}
	return nil, false
}

// flipTable collects, per region and column, how often each sentinel came
// out.
type flipTable struct {
	mu     sync.Mutex
	counts map[[2]string]map[string]int // {region, column} -> sentinel -> count
}

func newFlipTable() *flipTable { return &flipTable{counts: map[[2]string]map[string]int{}} }

func (ft *flipTable) add(region, column string, err error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	k := [2]string{region, column}
	if ft.counts[k] == nil {
		ft.counts[k] = map[string]int{}
	}
	ft.counts[k][sentinelName(err)]++
}

var flipColumns = []string{"0478 Decrypt", "0578 Decrypt", "0478 range"}

func (ft *flipTable) String() string {
	format := func(m map[string]int) string {
		var parts []string
		for k, v := range m {
			parts = append(parts, fmt.Sprintf("%s×%d", k, v))
		}
		sort.Strings(parts)
		return strings.Join(parts, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-30s", "region")
	for _, c := range flipColumns {
		fmt.Fprintf(&b, " | %-44s", c)
	}
	b.WriteString("\n")
	for _, r := range flipRegions {
		fmt.Fprintf(&b, "%-30s", r.region)
		for _, c := range flipColumns {
			fmt.Fprintf(&b, " | %-44s", format(ft.counts[[2]string{r.region, c}]))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// tamperRaceBuild reports a binary built with -race, where every decryption is
// several times slower (ECDSA P-384 about ten times): the flip matrix is then
// thinned so the whole file stays within seconds.
var tamperRaceBuild = sync.OnceValue(func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
})

// flip is one mutation of one byte, and the paths that check it.
type flipOp struct {
	mask        byte
	stream, rng bool
}

// flipPlan says which flips byte i of message number k gets. Header bytes
// fail inside NewDecrypter/OpenRange's header check, the same code for every
// path, so the stream and ranged paths mostly look at body bytes, where what
// they release matters.
//
// By default: every single-bit flip and 0xFF of every byte of unsigned
// messages; three masks per byte of signed ones. With -race or -short: two
// masks per byte of unsigned messages, one flip on every fourth byte of
// signed ones.
func flipPlan(signed, body bool, k, i int) []flipOp {
	rot := byte(1) << (i % 8)
	other := byte(1) << ((i + 3) % 8)
	thin := tamperRaceBuild() || testing.Short()
	switch {
	case !signed && !thin:
		plan := []flipOp{{rot, body, body}, {0xFF, body, body}}
		for b := 0; b < 8; b++ {
			if m := byte(1) << b; m != rot {
				plan = append(plan, flipOp{mask: m})
			}
		}
		return plan
	case !signed:
		return []flipOp{{rot, body, body}, {0xFF, false, false}}
	case !thin:
		return []flipOp{{rot, body, false}, {0xFF, false, false}, {other, false, false}}
	case (i+k)%4 == 0:
		return []flipOp{{rot, body, false}}
	}
	return nil
}

// TestTamperBitFlips flips bits of every byte of small multi-frame messages
// of both suites (see flipPlan) and checks that all paths refuse each one,
// with the sentinel flipRegions expects for the byte's region.
func TestTamperBitFlips(t *testing.T) {
	t.Parallel()
	ks := mustTamperKeys(t)
	table := newFlipTable()
	// Run returns once its parallel subtests are done.
	t.Run("cases", func(t *testing.T) {
		for k, c := range tamperCases(t, ks.kr) {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				spans := tamperLayout(t, c.msg, []string{"raw AES", "raw RSA"})
				h, err := envelope.ParseHeader(bytes.NewReader(c.msg))
				if err != nil {
					t.Fatal(err)
				}
				mut := make([]byte, len(c.msg))
				for i := range c.msg {
					region := regionOf(spans, i)
					for _, fl := range flipPlan(c.signed(), i >= h.Size(), k, i) {
						mask := fl.mask
						copy(mut, c.msg)
						mut[i] ^= mask
						what := fmt.Sprintf("%s: byte %d (%s) ^ %#02x", c.name, i, region.name, mask)
						res := decryptAllPaths(t, what, ks.kr, envelope.DecryptOptions{}, mut, c.pt, fl.stream, fl.rng && !c.signed())
						checkOneSentinel(t, what+": Decrypt", res.decrypt)
						if fl.stream && sentinelName(res.stream) != sentinelName(res.decrypt) {
							t.Errorf("%s: Decrypt says %v, the stream %v", what, res.decrypt, res.stream)
						}
						allowed, ok := flipAllowed(region.name, c.signed())
						if !ok {
							t.Fatalf("no region %q in flipRegions", region.name)
						}
						if !slices.Contains(allowed, sentinelName(res.decrypt)) {
							t.Errorf("%s: got %v (%s), expected one of %v", what, res.decrypt, sentinelName(res.decrypt), allowed)
						}
						table.add(region.name, c.suite.String()+" Decrypt", res.decrypt)
						if res.rng != nil {
							checkOneSentinel(t, what+": range", res.rng)
							table.add(region.name, "0478 range", res.rng)
						}
						if t.Failed() {
							return // the first failures of a message are enough to read
						}
					}
				}
			})
		}
	})
	t.Logf("sentinel per region (bit flips, both suites, 0/1/100/300 bytes, 64-byte frames, 2 EDKs):\n%s", table)
}

// ---------------------------------------------------------------------------
// Truncation and extension

// TestTamperTruncation cuts every message at every length and appends bytes
// after it: all three paths must refuse, with ErrTruncated or ErrMalformed
// (ErrRange for OpenRange on a signed message, which it never serves).
func TestTamperTruncation(t *testing.T) {
	t.Parallel()
	ks := mustTamperKeys(t)
	var mu sync.Mutex
	seen := map[string]map[string]int{} // path -> sentinel -> count
	note := func(path string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if seen[path] == nil {
			seen[path] = map[string]int{}
		}
		seen[path][sentinelName(err)]++
	}
	t.Run("cases", func(t *testing.T) {
		for _, c := range tamperCases(t, ks.kr) {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				for n := 0; n < len(c.msg); n++ {
					what := fmt.Sprintf("%s: first %d of %d bytes", c.name, n, len(c.msg))
					res := decryptAllPaths(t, what, ks.kr, envelope.DecryptOptions{}, c.msg[:n:n], c.pt, true, true)
					for _, p := range []struct {
						path string
						err  error
					}{{"Decrypt", res.decrypt}, {"stream", res.stream}, {"range", res.rng}} {
						note(p.path, p.err)
						checkOneSentinel(t, what+": "+p.path, p.err)
						ok := errors.Is(p.err, envelope.ErrTruncated) || errors.Is(p.err, envelope.ErrMalformed) ||
							(p.path == "range" && c.signed() && errors.Is(p.err, envelope.ErrRange))
						if !ok {
							t.Errorf("%s: %s: %v, want ErrTruncated or ErrMalformed", what, p.path, p.err)
						}
					}
				}
				// Trailing bytes: one zero byte, a random tail, the message again.
				for _, tail := range [][]byte{{0}, randBytes(1), randBytes(100), c.msg} {
					ext := append(slices.Clip(c.msg), tail...)
					what := fmt.Sprintf("%s + %d trailing bytes", c.name, len(tail))
					res := decryptAllPaths(t, what, ks.kr, envelope.DecryptOptions{}, ext, c.pt, true, true)
					for _, err := range []error{res.decrypt, res.stream} {
						if !errors.Is(err, envelope.ErrMalformed) {
							t.Errorf("%s: %v, want ErrMalformed", what, err)
						}
					}
					if !c.signed() && !errors.Is(res.rng, envelope.ErrMalformed) {
						t.Errorf("%s: range: %v, want ErrMalformed", what, res.rng)
					}
					note("trailing/Decrypt", res.decrypt)
					note("trailing/range", res.rng)
				}
			})
		}
	})
	t.Logf("sentinels seen for truncations and trailing bytes: %v", seen)
}

// ---------------------------------------------------------------------------
// A message builder with a known data key, for forgeries that need a valid
// header around a bad body.

const forgeProvider = "tamper-forge"

// forgeKEK opens any EDK with provider id forgeProvider to its data key,
// and counts its calls (Claims included: any call means the message got as
// far as its EDKs).
type forgeKEK struct {
	dek   []byte
	calls atomic.Int32
}

func (k *forgeKEK) Wrap(context.Context, []byte, envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	return envelope.EncryptedDataKey{}, errors.New("forgeKEK: decrypt only")
}

func (k *forgeKEK) Claims(edk envelope.EncryptedDataKey) bool {
	k.calls.Add(1)
	return edk.ProviderID == forgeProvider
}

func (k *forgeKEK) Unwrap(context.Context, envelope.EncryptedDataKey, envelope.EncryptionContext) ([]byte, error) {
	k.calls.Add(1)
	return bytes.Clone(k.dek), nil
}

// forgeCalls returns the calls that reached the forgeKEK of kr.
func forgeCalls(kr *envelope.Keyring) int32 { return kr.KEKs()[0].(*forgeKEK).calls.Load() }

// countingKEK counts the Unwrap calls reaching a KEK.
type countingKEK struct {
	envelope.KEK
	opens *atomic.Int32
}

func (c countingKEK) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	c.opens.Add(1)
	return c.KEK.Unwrap(ctx, edk, ec)
}

// countingKeyring returns a keyring over kr's KEKs that counts their
// Unwrap calls in opens.
func countingKeyring(kr *envelope.Keyring, opens *atomic.Int32) *envelope.Keyring {
	var keks []envelope.KEK
	for _, k := range kr.KEKs() {
		keks = append(keks, countingKEK{KEK: k, opens: opens})
	}
	return envelope.NewKeyring(keks...)
}

// forge describes a message to build by hand.
type msgForge struct {
	version  byte   // 2, or 1 for a legacy header
	suite    uint16 // 0x0478, or 0x0078 (v1, DEK = content key); others only for failing headers
	msgID    []byte
	ctx      []byte // serialized context, without its outer length
	edkCount int    // the count written; -1: len(edks)
	edks     []envelope.EncryptedDataKey
	content  byte // 2 framed, 1 non-framed
	frameLen uint32
	dek      []byte
	ivFor    func(seq uint32) []byte // a frame's IV; nil: its sequence number
}

func newMsgForge() *msgForge {
	return &msgForge{version: 2, suite: 0x0478, msgID: randBytes(32), edkCount: -1,
		edks:    []envelope.EncryptedDataKey{{ProviderID: forgeProvider, ProviderInfo: []byte("k"), Ciphertext: []byte("wrapped")}},
		content: 2, frameLen: tamperFrame, dek: randBytes(32)}
}

func (f *msgForge) keyring() *envelope.Keyring { return envelope.NewKeyring(&forgeKEK{dek: f.dek}) }

// keys derives the content and commit keys as the format does.
func (f *msgForge) keys() (contentKey, commitKey []byte) {
	if f.suite != 0x0478 && f.suite != 0x0578 {
		return f.dek, nil
	}
	prk, err := hkdf.Extract(sha512.New, f.dek, f.msgID)
	if err != nil {
		panic(err)
	}
	contentKey, err = hkdf.Expand(sha512.New, prk, string([]byte{byte(f.suite >> 8), byte(f.suite)})+"DERIVEKEY", 32)
	if err != nil {
		panic(err)
	}
	commitKey, err = hkdf.Expand(sha512.New, prk, "COMMITKEY", 32)
	if err != nil {
		panic(err)
	}
	return contentKey, commitKey
}

func forgeGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// headerFields returns the header up to (not including) the EDK list.
func (f *msgForge) headerStart() []byte {
	var b []byte
	if f.version == 1 {
		b = []byte{1, 0x80}
	} else {
		b = []byte{f.version}
	}
	b = binary.BigEndian.AppendUint16(b, f.suite)
	b = append(b, f.msgID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.ctx)))
	b = append(b, f.ctx...)
	n := f.edkCount
	if n < 0 {
		n = len(f.edks)
	}
	return binary.BigEndian.AppendUint16(b, uint16(n))
}

// header returns the whole authenticated header.
func (f *msgForge) header() []byte {
	b := f.headerStart()
	for _, e := range f.edks {
		for _, fld := range [][]byte{[]byte(e.ProviderID), e.ProviderInfo, e.Ciphertext} {
			b = binary.BigEndian.AppendUint16(b, uint16(len(fld)))
			b = append(b, fld...)
		}
	}
	b = append(b, f.content)
	contentKey, commitKey := f.keys()
	if f.version == 1 {
		b = append(b, 0, 0, 0, 0, 12)
		b = binary.BigEndian.AppendUint32(b, f.frameLen)
		iv := randBytes(12)
		return forgeGCM(contentKey).Seal(append(b, iv...), iv, nil, b)
	}
	b = binary.BigEndian.AppendUint32(b, f.frameLen)
	b = append(b, commitKey...)
	return forgeGCM(contentKey).Seal(b, make([]byte, 12), nil, b)
}

func (f *msgForge) bodyAAD(content string, seq uint32, n uint64) []byte {
	a := append(bytes.Clone(f.msgID), content...)
	a = binary.BigEndian.AppendUint32(a, seq)
	return binary.BigEndian.AppendUint64(a, n)
}

func forgeIV(seq uint32) []byte {
	iv := make([]byte, 12)
	binary.BigEndian.PutUint32(iv[8:], seq)
	return iv
}

// frame seals one frame with sequence number seq; final picks the final
// frame's layout and content string.
func (f *msgForge) frame(seq uint32, final bool, pt []byte) []byte {
	return f.frameAs(seq, final, final, pt)
}

// frameAs seals a frame in the final (layoutFinal) or regular layout, with
// the final or regular content string (aadFinal) in its AAD.
func (f *msgForge) frameAs(seq uint32, layoutFinal, aadFinal bool, pt []byte) []byte {
	contentKey, _ := f.keys()
	content := "AWSKMSEncryptionClient Frame"
	if aadFinal {
		content = "AWSKMSEncryptionClient Final Frame"
	}
	var b []byte
	if layoutFinal {
		b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
	}
	b = binary.BigEndian.AppendUint32(b, seq)
	iv := forgeIV(seq)
	if f.ivFor != nil {
		iv = f.ivFor(seq)
	}
	b = append(b, iv...)
	if layoutFinal {
		b = binary.BigEndian.AppendUint32(b, uint32(len(pt)))
	}
	return forgeGCM(contentKey).Seal(b, iv, pt, f.bodyAAD(content, seq, uint64(len(pt))))
}

// frames returns the framed body of pt, one slice per frame.
func (f *msgForge) frames(pt []byte) [][]byte {
	var out [][]byte
	fl := int(f.frameLen)
	seq := uint32(1)
	for len(pt) > fl {
		out = append(out, f.frame(seq, false, pt[:fl]))
		pt, seq = pt[fl:], seq+1
	}
	return append(out, f.frame(seq, true, pt))
}

// message returns header and framed body of pt.
func (f *msgForge) message(pt []byte) []byte {
	return slices.Concat(append([][]byte{f.header()}, f.frames(pt)...)...)
}

// single returns a non-framed body: IV | u64 claimed length | ciphertext | tag.
func (f *msgForge) single(pt []byte, claimed uint64) []byte {
	contentKey, _ := f.keys()
	iv := randBytes(12)
	b := binary.BigEndian.AppendUint64(bytes.Clone(iv), claimed)
	return forgeGCM(contentKey).Seal(b, iv, pt, f.bodyAAD("AWSKMSEncryptionClient Single Block", 1, claimed))
}

func tamperSerializeContext(t testing.TB, ec envelope.EncryptionContext) []byte {
	t.Helper()
	b, err := ec.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTamperForgeBuilder checks the hand-made messages the forgery tests
// start from: built right, they decrypt, so the forgeries fail only for what
// each one changes. It also covers the decrypt-only formats: non-framed
// bodies and v1 headers.
func TestTamperForgeBuilder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pt := randBytes(300)

	f := newMsgForge()
	f.ctx = tamperSerializeContext(t, tamperContext)
	msg := f.message(pt)
	got, h, err := envelope.Decrypt(ctx, msg, f.keyring(), envelope.DecryptOptions{})
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("hand-built framed message: %v", err)
	}
	if h.Context["ключ"] != "値" {
		t.Fatalf("context %v", h.Context)
	}
	rr, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), f.keyring(), envelope.DecryptOptions{})
	if err != nil {
		t.Fatalf("hand-built framed message, OpenRange: %v", err)
	}
	if all, err := io.ReadAll(io.NewSectionReader(rr, 0, rr.Size())); err != nil || !bytes.Equal(all, pt) {
		t.Fatalf("hand-built framed message, ReadAt: %v", err)
	}

	// Non-framed (decrypt only).
	nf := newMsgForge()
	nf.content, nf.frameLen = 1, 0
	msg = append(nf.header(), nf.single(pt, uint64(len(pt)))...)
	if got, _, err := envelope.Decrypt(ctx, msg, nf.keyring(), envelope.DecryptOptions{}); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("hand-built non-framed message: %v", err)
	}
	if _, err := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), nf.keyring(), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrRange) {
		t.Fatalf("OpenRange on a non-framed message: %v, want ErrRange", err)
	}

	// v1, suite 0x0078: refused by the default policy, read under the
	// permissive one.
	v1 := newMsgForge()
	v1.version, v1.suite, v1.msgID = 1, 0x0078, randBytes(16)
	v1.ctx = tamperSerializeContext(t, tamperContext)
	msg = v1.message(pt)
	kr := v1.keyring()
	if _, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrCommitmentPolicy) {
		t.Fatalf("v1 message under the default policy: %v, want ErrCommitmentPolicy", err)
	}
	if forgeCalls(kr) != 0 {
		t.Fatalf("the keyring was asked for the key of a message the policy refuses")
	}
	got, _, err = envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{Policy: envelope.RequireEncryptAllowDecrypt})
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("v1 message under RequireEncryptAllowDecrypt: %v", err)
	}
}

// expectForgery checks one forged message on all paths: Decrypt and the
// stream fail with want (and release nothing false), the ranged path fails
// somewhere (with wantRange if not nil).
func expectForgery(t *testing.T, kr *envelope.Keyring, opts envelope.DecryptOptions, msg, truePT []byte, want, wantRange error) {
	t.Helper()
	res := decryptAllPaths(t, t.Name(), kr, opts, msg, truePT, true, true)
	for _, p := range []struct {
		path string
		err  error
	}{{"Decrypt", res.decrypt}, {"stream", res.stream}} {
		if !errors.Is(p.err, want) {
			t.Errorf("%s: %v (%s), want %v", p.path, p.err, sentinelName(p.err), want)
		}
		checkOneSentinel(t, p.path, p.err)
	}
	if wantRange != nil && !errors.Is(res.rng, wantRange) {
		t.Errorf("range: %v (%s), want %v", res.rng, sentinelName(res.rng), wantRange)
	}
	t.Logf("Decrypt: %v | range: %v", res.decrypt, res.rng)
}

// tamperSplitFrames splits a real framed message (frame length fl, unsigned) into
// header and frames.
func tamperSplitFrames(t testing.TB, msg []byte, fl int) (header []byte, frames [][]byte) {
	t.Helper()
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	header, rest := msg[:h.Size()], msg[h.Size():]
	for len(rest) > 0 {
		if binary.BigEndian.Uint32(rest) == 0xFFFFFFFF {
			n := int(binary.BigEndian.Uint32(rest[20:]))
			frames = append(frames, rest[:24+n+16])
			rest = rest[24+n+16:]
			continue
		}
		frames = append(frames, rest[:4+12+fl+16])
		rest = rest[4+12+fl+16:]
	}
	return header, frames
}

func TestTamperForgeries(t *testing.T) {
	t.Parallel()
	ks := mustTamperKeys(t)
	ctx := context.Background()
	pt := randBytes(300) // 4 regular frames of 64 bytes and a final frame of 44
	encrypt := func(kr *envelope.Keyring) []byte {
		msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{FrameSize: tamperFrame, Context: tamperContext})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	none := envelope.DecryptOptions{}

	t.Run("header re-keyed, body kept", func(t *testing.T) {
		t.Parallel()
		// Same message id, a different data key: a valid header, a body that
		// belongs to another key.
		f := newMsgForge()
		body := f.message(pt)[len(f.header()):]
		g := *f
		g.dek = randBytes(32)
		expectForgery(t, g.keyring(), none, append(g.header(), body...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("header of a message under another KEK, body kept", func(t *testing.T) {
		t.Parallel()
		_, f1 := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		h2, _ := tamperSplitFrames(t, encrypt(ks.other), tamperFrame)
		expectForgery(t, ks.other, none, slices.Concat(append([][]byte{h2}, f1...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("frame swapped between two messages of one keyring", func(t *testing.T) {
		t.Parallel()
		ha, fa := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		_, fb := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		for i := range fa {
			frames := slices.Clone(fa)
			frames[i] = fb[i]
			t.Run(fmt.Sprintf("frame %d", i+1), func(t *testing.T) {
				expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{ha}, frames...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
			})
		}
	})
	t.Run("frame swapped between two messages of one data key", func(t *testing.T) {
		t.Parallel()
		f := newMsgForge()
		g := *f
		g.msgID = randBytes(32)
		frames := f.frames(pt)
		frames[1] = g.frames(pt)[1]
		expectForgery(t, f.keyring(), none, slices.Concat(append([][]byte{f.header()}, frames...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("frames reordered", func(t *testing.T) {
		t.Parallel()
		h, frames := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		swapped := slices.Clone(frames)
		swapped[0], swapped[1] = swapped[1], swapped[0]
		expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{h}, swapped...)...), pt, envelope.ErrMalformed, envelope.ErrMalformed)
		// The same with the sequence numbers put back in order: only the
		// frame authentication can tell.
		renumbered := [][]byte{bytes.Clone(frames[1]), bytes.Clone(frames[0])}
		binary.BigEndian.PutUint32(renumbered[0], 1)
		binary.BigEndian.PutUint32(renumbered[1], 2)
		copy(renumbered[0][4:16], forgeIV(1)) // IVs follow the numbers
		copy(renumbered[1][4:16], forgeIV(2))
		renumbered = append(renumbered, frames[2:]...)
		t.Run("renumbered", func(t *testing.T) {
			expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{h}, renumbered...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
		})
	})
	t.Run("frame IVs not their sequence numbers", func(t *testing.T) {
		t.Parallel()
		// Made by a key holder, so every tag verifies: only the IV rule
		// (the ESDK writes the sequence number) refuses it, on every path.
		for name, ivFor := range map[string]func(uint32) []byte{
			"random":           func(uint32) []byte { return randBytes(12) },
			"final frame only": func(seq uint32) []byte { iv := forgeIV(seq); iv[0] = 1; return iv },
			"little-endian":    func(seq uint32) []byte { iv := make([]byte, 12); binary.LittleEndian.PutUint32(iv, seq); return iv },
		} {
			t.Run(name, func(t *testing.T) {
				f := newMsgForge()
				if name == "final frame only" {
					last := uint32((len(pt) + tamperFrame - 1) / tamperFrame)
					f.ivFor = func(seq uint32) []byte {
						if seq == last {
							return ivFor(seq)
						}
						return forgeIV(seq)
					}
				} else {
					f.ivFor = ivFor
				}
				expectForgery(t, f.keyring(), none, f.message(pt), pt, envelope.ErrMalformed, envelope.ErrMalformed)
			})
		}
		// The same forge with sequence-number IVs decrypts: the test
		// message is otherwise valid.
		f := newMsgForge()
		got, _, err := envelope.Decrypt(context.Background(), f.message(pt), f.keyring(), none)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("forged message with proper IVs: %v", err)
		}
	})
	t.Run("final frame replaced by a regular frame", func(t *testing.T) {
		t.Parallel()
		f := newMsgForge()
		full := pt[:320-64] // 256 bytes: frames 1-3 regular, frame 4 final of 64
		frames := f.frames(full)
		// Frame 4 sealed as a regular frame and the message ends there.
		frames[3] = f.frame(4, false, full[192:])
		msg := slices.Concat(append([][]byte{f.header()}, frames...)...)
		expectForgery(t, f.keyring(), none, msg, full, envelope.ErrTruncated, nil)
	})
	t.Run("final frame sealed with the regular content string", func(t *testing.T) {
		t.Parallel()
		f := newMsgForge()
		frames := f.frames(pt)
		last := len(frames) - 1
		frames[last] = f.frameAs(uint32(last+1), true, false, pt[last*tamperFrame:])
		expectForgery(t, f.keyring(), none, slices.Concat(append([][]byte{f.header()}, frames...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("regular frame relabelled final, rest dropped", func(t *testing.T) {
		t.Parallel()
		// The truncation attack: frame 2's ciphertext dressed as a final frame.
		h, frames := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		reg := frames[1]
		final := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
		final = append(final, reg[:16]...) // seq 2, IV
		final = binary.BigEndian.AppendUint32(final, tamperFrame)
		final = append(final, reg[16:]...)
		expectForgery(t, ks.kr, none, slices.Concat(h, frames[0], final), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("final frame dropped", func(t *testing.T) {
		t.Parallel()
		h, frames := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{h}, frames[:len(frames)-1]...)...), pt, envelope.ErrTruncated, envelope.ErrTruncated)
	})
	t.Run("frames after the final frame", func(t *testing.T) {
		t.Parallel()
		h, frames := tamperSplitFrames(t, encrypt(ks.kr), tamperFrame)
		expectForgery(t, ks.kr, none, slices.Concat(append(append([][]byte{h}, frames...), frames[0])...), pt, envelope.ErrMalformed, envelope.ErrMalformed)
	})
	t.Run("zero EDKs", func(t *testing.T) {
		t.Parallel()
		f := newMsgForge()
		f.edks = nil
		kr := f.keyring()
		expectForgery(t, kr, none, f.message(pt), pt, envelope.ErrMalformed, envelope.ErrMalformed)
		if forgeCalls(kr) != 0 {
			t.Errorf("the keyring was called for a message without EDKs")
		}
		if _, err := envelope.ParseHeader(bytes.NewReader(f.message(pt))); !errors.Is(err, envelope.ErrMalformed) {
			t.Errorf("ParseHeader: %v, want ErrMalformed", err)
		}
	})
	t.Run("EDK count above the maximum", func(t *testing.T) {
		t.Parallel()
		// A real message with 2 EDKs and a limit of 1.
		msg := encrypt(ks.kr)
		var opens atomic.Int32
		ckr := countingKeyring(ks.kr, &opens)
		expectForgery(t, ckr, envelope.DecryptOptions{MaxEncryptedDataKeys: 1}, msg, pt, envelope.ErrTooManyEDKs, envelope.ErrTooManyEDKs)
		if opens.Load() != 0 {
			t.Errorf("the keyring was called for a message with too many EDKs")
		}
		for _, max := range []int{2, -1} {
			if _, _, err := envelope.Decrypt(ctx, msg, ks.kr, envelope.DecryptOptions{MaxEncryptedDataKeys: max}); err != nil {
				t.Errorf("MaxEncryptedDataKeys %d: %v", max, err)
			}
		}
		// A header that claims 65535 EDKs and ends right after the count:
		// the limit must fire before any EDK is read, so this is
		// ErrTooManyEDKs and not ErrTruncated.
		f := newMsgForge()
		f.edkCount = math.MaxUint16
		cut := f.headerStart()
		for _, opts := range []envelope.DecryptOptions{{}, {MaxEncryptedDataKeys: 1}, {MaxEncryptedDataKeys: 65534}} {
			kr := f.keyring()
			_, _, err := envelope.Decrypt(ctx, cut, kr, opts)
			if !errors.Is(err, envelope.ErrTooManyEDKs) {
				t.Errorf("max %d, header cut after the EDK count: %v, want ErrTooManyEDKs", opts.MaxEncryptedDataKeys, err)
			}
			if forgeCalls(kr) != 0 {
				t.Errorf("the keyring was called")
			}
		}
		// Without a bound the same bytes are merely truncated.
		if _, _, err := envelope.Decrypt(ctx, cut, f.keyring(), envelope.DecryptOptions{MaxEncryptedDataKeys: -1}); !errors.Is(err, envelope.ErrTruncated) {
			t.Errorf("no bound, header cut after the EDK count: %v, want ErrTruncated", err)
		}
		if _, err := envelope.ParseHeaderMax(bytes.NewReader(cut), -1); !errors.Is(err, envelope.ErrTruncated) {
			t.Errorf("ParseHeaderMax(-1): %v, want ErrTruncated", err)
		}
		if _, err := envelope.ParseHeader(bytes.NewReader(cut)); !errors.Is(err, envelope.ErrTooManyEDKs) {
			t.Errorf("ParseHeader: %v, want ErrTooManyEDKs (the default bound)", err)
		}
	})
	t.Run("unknown suite", func(t *testing.T) {
		t.Parallel()
		for _, id := range []uint16{0x0000, 0x0479, 0x9999, 0xFFFF} {
			f := newMsgForge()
			f.suite = id
			kr := f.keyring()
			t.Run(fmt.Sprintf("%04x", id), func(t *testing.T) {
				expectForgery(t, kr, none, f.message(pt), pt, envelope.ErrUnsupported, envelope.ErrUnsupported)
				if _, err := envelope.ParseHeader(bytes.NewReader(f.message(pt))); !errors.Is(err, envelope.ErrUnsupported) {
					t.Errorf("ParseHeader: %v, want ErrUnsupported", err)
				}
				if forgeCalls(kr) != 0 {
					t.Errorf("the keyring was called")
				}
			})
		}
	})
	t.Run("v1 suite", func(t *testing.T) {
		t.Parallel()
		f := newMsgForge()
		f.version, f.suite, f.msgID = 1, 0x0078, randBytes(16)
		kr := f.keyring()
		for _, p := range []envelope.CommitmentPolicy{envelope.RequireEncryptRequireDecrypt} {
			expectForgery(t, kr, envelope.DecryptOptions{Policy: p}, f.message(pt), pt, envelope.ErrCommitmentPolicy, envelope.ErrCommitmentPolicy)
		}
		if forgeCalls(kr) != 0 {
			t.Errorf("the keyring was called for a message the policy refuses")
		}
		// A v1 suite id in a v2 header is malformed whatever the policy.
		g := newMsgForge()
		g.suite = 0x0078
		t.Run("in a v2 header", func(t *testing.T) {
			expectForgery(t, g.keyring(), envelope.DecryptOptions{Policy: envelope.RequireEncryptAllowDecrypt}, g.message(pt), pt, envelope.ErrMalformed, envelope.ErrMalformed)
		})
	})
	t.Run("frame length above the maximum", func(t *testing.T) {
		t.Parallel()
		msg := encrypt(ks.kr)
		var opens atomic.Int32
		ckr := countingKeyring(ks.kr, &opens)
		expectForgery(t, ckr, envelope.DecryptOptions{MaxFrameSize: tamperFrame - 1}, msg, pt, envelope.ErrMalformed, envelope.ErrMalformed)
		if opens.Load() != 0 {
			t.Errorf("the keyring was called for a frame length above the limit")
		}
		if _, _, err := envelope.Decrypt(ctx, msg, ks.kr, envelope.DecryptOptions{MaxFrameSize: tamperFrame}); err != nil {
			t.Errorf("frame length equal to the limit: %v", err)
		}
		for _, fl := range []uint32{envelope.DefaultMaxFrameSize + 1, math.MaxUint32} {
			f := newMsgForge()
			f.frameLen = fl
			kr := f.keyring()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := envelope.Decrypt(ctx, f.header(), kr, none)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, envelope.ErrMalformed) {
				t.Errorf("frame length %d: %v, want ErrMalformed", fl, err)
			}
			if forgeCalls(kr) != 0 {
				t.Errorf("frame length %d: the keyring was called", fl)
			}
			t.Logf("frame length %d: %v (%d bytes allocated)", fl, err, after.TotalAlloc-before.TotalAlloc)
		}
		// Frame length 0 in a framed header, followed by an empty final frame.
		f := newMsgForge()
		f.frameLen = 0
		msg = append(f.header(), f.frame(1, true, nil)...)
		expectForgery(t, f.keyring(), none, msg, nil, envelope.ErrMalformed, envelope.ErrMalformed)
	})
	t.Run("wrong required context", func(t *testing.T) {
		t.Parallel()
		msg := encrypt(ks.kr)
		for _, tc := range []struct {
			req  envelope.EncryptionContext
			name string
		}{
			{envelope.EncryptionContext{"tenant": "acme"}, "tenant"},
			{envelope.EncryptionContext{"purpose": "something-else"}, "purpose"},
			{envelope.EncryptionContext{"ключ": "値", "purpose": "x"}, "purpose"},
		} {
			var opens atomic.Int32
			ckr := countingKeyring(ks.kr, &opens)
			res := decryptAllPaths(t, fmt.Sprint(tc.req), ckr, envelope.DecryptOptions{RequiredContext: tc.req}, msg, pt, true, true)
			for _, err := range []error{res.decrypt, res.stream, res.rng} {
				if !errors.Is(err, envelope.ErrContext) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.name)) {
					t.Errorf("required %v: %v, want ErrContext naming %q", tc.req, err, tc.name)
				}
				checkOneSentinel(t, "required context", err)
			}
			if opens.Load() != 0 {
				t.Errorf("the keyring was called before the context was checked")
			}
			t.Logf("required %v: %v", tc.req, res.decrypt)
		}
		if _, _, err := envelope.Decrypt(ctx, msg, ks.kr, envelope.DecryptOptions{RequiredContext: envelope.EncryptionContext{"ключ": "値"}}); err != nil {
			t.Errorf("matching required context: %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		msg := encrypt(ks.kr)
		// ks.other has the same namespace and key name as the AES KEK of
		// ks.kr but other key bytes.
		expectForgery(t, ks.other, none, msg, pt, envelope.ErrNoKEK, envelope.ErrNoKEK)
		_, _, err := envelope.Decrypt(ctx, msg, ks.other, none)
		if !errors.Is(err, rawaes.ErrBadKey) {
			t.Errorf("the ErrNoKEK error does not carry the KEK's own failure: %v", err)
		}
		// A message whose only EDK names a KEK this keyring does not have.
		expectForgery(t, ks.kr, none, newMsgForge().message(pt), pt, envelope.ErrNoKEK, envelope.ErrNoKEK)
		// Messages of ks.other opened by ks.kr.
		expectForgery(t, ks.kr, none, encrypt(ks.other), pt, envelope.ErrNoKEK, envelope.ErrNoKEK)
	})
}

// TestTamperNonFramedHugeLength: a non-framed body whose length field claims
// up to 2^64-1 bytes, behind a valid header, must fail on the bound before
// any allocation of that size.
func TestTamperNonFramedHugeLength(t *testing.T) {
	// Not parallel: it measures the allocations of one call.
	ctx := context.Background()
	for _, tc := range []struct {
		claim uint64
		opts  envelope.DecryptOptions
	}{
		{1 << 63, envelope.DecryptOptions{}},
		{math.MaxUint64, envelope.DecryptOptions{}},
		{1 << 30, envelope.DecryptOptions{}}, // would be allocatable: the bound must still fire
		{envelope.DefaultMaxFrameSize + 1, envelope.DecryptOptions{}},
		{4097, envelope.DecryptOptions{MaxFrameSize: 4096}},
	} {
		f := newMsgForge()
		f.content, f.frameLen = 1, 0
		msg := append(f.header(), f.single([]byte("tiny"), tc.claim)...)
		for _, conc := range []int{1, 0} {
			opts := tc.opts
			opts.Concurrency = conc
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			pt, _, err := envelope.Decrypt(ctx, msg, f.keyring(), opts)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			if !errors.Is(err, envelope.ErrMalformed) || pt != nil {
				t.Errorf("claim %d: %v, want ErrMalformed", tc.claim, err)
			}
			if alloc > 4<<20 {
				t.Errorf("claim %d: Decrypt allocated %d bytes", tc.claim, alloc)
			}
			if conc == 1 {
				t.Logf("claim %d (limit %d): %v; %d bytes allocated", tc.claim, tc.opts.MaxFrameSize, err, alloc)
			}
		}
	}
	// Within the limit but cut short: truncated, not a giant read.
	f := newMsgForge()
	f.content, f.frameLen = 1, 0
	msg := append(f.header(), f.single(randBytes(1000), 1000)...)
	if _, _, err := envelope.Decrypt(ctx, msg[:len(msg)-500], f.keyring(), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrTruncated) {
		t.Errorf("cut non-framed body: %v, want ErrTruncated", err)
	}
	// A non-framed header with a frame length.
	g := newMsgForge()
	g.content, g.frameLen = 1, 64
	if _, _, err := envelope.Decrypt(ctx, append(g.header(), g.single(nil, 0)...), g.keyring(), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrMalformed) {
		t.Errorf("non-framed header with a frame length: %v, want ErrMalformed", err)
	}
}

// TestTamperContextEmptyKey: a header whose context holds an empty key is
// malformed (the format's serializer can never produce one): ParseHeader and
// Decrypt both reject it with ErrMalformed alone, before any KEK is asked.
func TestTamperContextEmptyKey(t *testing.T) {
	t.Parallel()
	ks := mustTamperKeys(t)
	f := newMsgForge()
	f.ctx = []byte{0, 1, 0, 0, 0, 1, 'x'} // one pair: "" = "x"
	// An EDK the raw AES KEK of ks claims (its provider id and info layout).
	f.edks = []envelope.EncryptedDataKey{{ProviderID: "tamper", ProviderInfo: rawaes.ProviderInfo("aes-kek", randBytes(12)), Ciphertext: randBytes(48)}}
	msg := f.message([]byte("hi"))
	if _, err := envelope.ParseHeader(bytes.NewReader(msg)); !errors.Is(err, envelope.ErrMalformed) {
		t.Fatalf("ParseHeader: %v, want ErrMalformed", err)
	}
	_, _, err := envelope.Decrypt(context.Background(), msg, ks.aes, envelope.DecryptOptions{})
	if !errors.Is(err, envelope.ErrMalformed) {
		t.Fatalf("Decrypt: %v, want ErrMalformed", err)
	}
	checkOneSentinel(t, "empty context key", err)
}

// TestTamperStreamMultiJob flips one byte in messages large enough that the
// stream decrypter works on several batches of frames at once: it may hand
// out the frames before the bad one (each authenticated), never the bad
// frame or anything after it, and for signed messages never the final frame
// before the signature verified.
func TestTamperStreamMultiJob(t *testing.T) {
	t.Parallel()
	ks := mustTamperKeys(t)
	const frame = 4096 // 64 frames (256 KiB) per batch
	pt := randBytes(1<<20 + 100)
	frames := (len(pt) + frame - 1) / frame // 257: 256 regular + a final of 100
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		msg, err := envelope.Encrypt(context.Background(), pt, ks.aes, envelope.EncryptOptions{Suite: suite, FrameSize: frame})
		if err != nil {
			t.Fatal(err)
		}
		h, err := envelope.ParseHeader(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		stride := 4 + 12 + frame + 16
		for _, k := range []int{1, 64, 65, 130, 200, frames - 1, frames} { // 1-based frame to damage
			off := h.Size() + (k-1)*stride + 40 // inside the ciphertext
			if k == frames {
				off += 4 + 4 // final frame: marker and length fields before the IV
			}
			t.Run(fmt.Sprintf("%v/frame%d", suite, k), func(t *testing.T) {
				t.Parallel()
				bad := bytes.Clone(msg)
				bad[off] ^= 0x10
				d, err := envelope.NewDecrypter(context.Background(), bytes.NewReader(bad), ks.aes, envelope.DecryptOptions{Concurrency: 2})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				var out []byte
				buf := make([]byte, 1000)
				for {
					n, err := d.Read(buf)
					out = append(out, buf[:n]...)
					if err != nil {
						if err == io.EOF {
							t.Fatal("the damaged message read to the end")
						}
						if suite.Signed() && k == frames && !errors.Is(err, envelope.ErrSignature) ||
							!(suite.Signed() && k == frames) && !errors.Is(err, envelope.ErrFrameAuth) {
							t.Errorf("error %v", err)
						}
						break
					}
				}
				if !bytes.HasPrefix(pt, out) {
					t.Fatalf("released %d bytes that are not the plaintext", len(out))
				}
				if limit := (k - 1) * frame; len(out) > limit {
					t.Fatalf("released %d bytes, past the start of damaged frame %d (byte %d)", len(out), k, limit)
				}
				t.Logf("released %d bytes (frames before the damaged one: %d bytes)", len(out), (k-1)*frame)
			})
		}
	}
	// Damage the signature itself: every regular frame is authenticated by
	// GCM and may be released, the final frame must not be.
	msg, err := envelope.Encrypt(context.Background(), pt, ks.aes, envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA, FrameSize: frame})
	if err != nil {
		t.Fatal(err)
	}
	msg[len(msg)-5] ^= 1
	d, err := envelope.NewDecrypter(context.Background(), bytes.NewReader(msg), ks.aes, envelope.DecryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(d)
	d.Close()
	if !errors.Is(err, envelope.ErrSignature) || !bytes.HasPrefix(pt, out) || len(out) > (frames-1)*frame {
		t.Fatalf("bad signature: %d bytes released, %v", len(out), err)
	}
	t.Logf("bad signature: %d of %d bytes released before ErrSignature", len(out), len(pt))
}
