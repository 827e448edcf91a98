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
	kr    *envelope.MultiKeyring // raw AES then raw RSA: every message has 2 EDKs
	aes   *envelope.MultiKeyring // the raw AES KEK alone
	other *envelope.MultiKeyring // an unrelated raw AES KEK with the same names
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
	if ks.kr, err = envelope.NewMultiKeyring(ak, rk); err != nil {
		return nil, err
	}
	if ks.aes, err = envelope.NewMultiKeyring(ak); err != nil {
		return nil, err
	}
	if ks.other, err = envelope.NewMultiKeyring(ok); err != nil {
		return nil, err
	}
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
func tamperCases(t testing.TB, kr envelope.Keyring) []tamperCase {
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

type span struct {
	name       string
	start, end int
}

// tamperLayout splits a v2 framed message into named regions. Regions of
// the same kind (every regular frame's tag, say) share a name.
func tamperLayout(t testing.TB, msg []byte, edkNames []string) []span {
	t.Helper()
	var spans []span
	off := 0
	add := func(name string, n int) []byte {
		if off+n > len(msg) {
			t.Fatalf("layout: %s runs past the message", name)
		}
		spans = append(spans, span{name, off, off + n})
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

func regionOf(spans []span, i int) span {
	for _, s := range spans {
		if i >= s.start && i < s.end {
			return s
		}
	}
	return span{name: "?"}
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
func decryptAllPaths(t testing.TB, what string, kr envelope.Keyring, opts envelope.DecryptOptions, msg, truePT []byte, withStream, withRange bool) tamperResult {
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

// flipAllowed lists, per region, the sentinels a flip there may give. A flip
// that turns a field into another valid-looking value must still fail on
// authentication, so each list is short.
var flipAllowed = map[string][]string{
	"header: version":               {"ErrUnsupported", "ErrMalformed"},
	"header: suite id":              {"ErrUnsupported", "ErrMalformed"},
	"header: message id":            {"ErrCommitment"},
	"header: context length":        {"ErrMalformed", "ErrTruncated", "ErrTooManyEDKs", "ErrUnsupported"},
	"header: context":               {"ErrMalformed", "ErrHeaderAuth"},
	"header: EDK count":             {"ErrMalformed", "ErrTruncated", "ErrTooManyEDKs"},
	"EDK length fields":             {"ErrMalformed", "ErrTruncated", "ErrTooManyEDKs", "ErrUnsupported", "ErrHeaderAuth"},
	"header: content type":          {"ErrMalformed"},
	"header: frame length":          {"ErrMalformed", "ErrHeaderAuth"},
	"header: commit key":            {"ErrCommitment"},
	"header: auth tag":              {"ErrHeaderAuth"},
	"frame: seq":                    {"ErrMalformed"},
	"frame: IV":                     {"ErrFrameAuth"},
	"frame: ciphertext":             {"ErrFrameAuth"},
	"frame: tag":                    {"ErrFrameAuth"},
	"final frame: marker":           {"ErrMalformed"},
	"final frame: seq":              {"ErrMalformed"},
	"final frame: IV":               {"ErrFrameAuth"},
	"final frame: length":           {"ErrMalformed", "ErrTruncated", "ErrFrameAuth", "ErrSignature"},
	"final frame: ciphertext":       {"ErrFrameAuth"},
	"final frame: tag":              {"ErrFrameAuth"},
	"footer: signature length":      {"ErrTruncated", "ErrSignature", "ErrMalformed"},
	"footer: signature":             {"ErrSignature"},
	"EDK 1 (raw AES) provider id":   {"ErrHeaderAuth"},
	"EDK 1 (raw AES) provider info": {"ErrHeaderAuth"},
	"EDK 1 (raw AES) ciphertext":    {"ErrHeaderAuth"},
	"EDK 2 (raw RSA) provider id":   {"ErrHeaderAuth"},
	"EDK 2 (raw RSA) provider info": {"ErrHeaderAuth"},
	"EDK 2 (raw RSA) ciphertext":    {"ErrHeaderAuth"},
}

// flipTable collects, per region, how often each sentinel came out.
type flipTable struct {
	mu    sync.Mutex
	order map[string]int            // region -> first offset seen (for sorting)
	dec   map[string]map[string]int // region -> Decrypt sentinel -> count
	rng   map[string]map[string]int // region -> OpenRange/ReadAt sentinel -> count
}

func newFlipTable() *flipTable {
	return &flipTable{order: map[string]int{}, dec: map[string]map[string]int{}, rng: map[string]map[string]int{}}
}

func (ft *flipTable) add(region string, off int, dec, rng error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if o, ok := ft.order[region]; !ok || off < o {
		ft.order[region] = off
	}
	inc := func(m map[string]map[string]int, err error) {
		if m[region] == nil {
			m[region] = map[string]int{}
		}
		m[region][sentinelName(err)]++
	}
	inc(ft.dec, dec)
	if rng != nil {
		inc(ft.rng, rng)
	}
}

func (ft *flipTable) String() string {
	regions := make([]string, 0, len(ft.dec))
	for r := range ft.dec {
		regions = append(regions, r)
	}
	sort.Slice(regions, func(i, j int) bool {
		if ft.order[regions[i]] != ft.order[regions[j]] {
			return ft.order[regions[i]] < ft.order[regions[j]]
		}
		return regions[i] < regions[j]
	})
	format := func(m map[string]int) string {
		var parts []string
		for k, v := range m {
			parts = append(parts, fmt.Sprintf("%s×%d", k, v))
		}
		sort.Strings(parts)
		return strings.Join(parts, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-32s | %-60s | %s\n", "region", "Decrypt / stream", "OpenRange+ReadAt (0478)")
	for _, r := range regions {
		fmt.Fprintf(&b, "%-32s | %-60s | %s\n", r, format(ft.dec[r]), format(ft.rng[r]))
	}
	return b.String()
}

// TestTamperBitFlips flips every bit of small multi-frame messages of both
// suites. Decrypt sees all eight single-bit flips of every byte; the stream
// and ranged paths see one flip per byte (the bit rotating with the offset)
// plus an all-ones flip, to keep -race runs short.
func TestTamperBitFlips(t *testing.T) {
	t.Parallel()
	ks := mustTamperKeys(t)
	table := newFlipTable()
	// Run returns once its parallel subtests are done.
	t.Run("cases", func(t *testing.T) {
		for _, c := range tamperCases(t, ks.kr) {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				spans := tamperLayout(t, c.msg, []string{"raw AES", "raw RSA"})
				mut := make([]byte, len(c.msg))
				for i := range c.msg {
					region := regionOf(spans, i)
					for bit := 0; bit < 9; bit++ {
						mask := byte(1) << bit
						full := bit == i%8 // the flip the other paths see
						if bit == 8 {
							mask, full = 0xFF, true
						}
						copy(mut, c.msg)
						mut[i] ^= mask
						what := fmt.Sprintf("%s: byte %d (%s) ^ %#02x", c.name, i, region.name, mask)
						res := decryptAllPaths(t, what, ks.kr, envelope.DecryptOptions{}, mut, c.pt, full, full && !c.signed())
						checkOneSentinel(t, what+": Decrypt", res.decrypt)
						if full {
							if res.stream != nil && sentinelName(res.stream) != sentinelName(res.decrypt) {
								t.Errorf("%s: Decrypt says %v, the stream %v", what, res.decrypt, res.stream)
							}
							if res.rng != nil {
								checkOneSentinel(t, what+": range", res.rng)
							}
						}
						if allowed, ok := flipAllowed[region.name]; ok && !slices.Contains(allowed, sentinelName(res.decrypt)) {
							t.Errorf("%s: got %v (%s), expected one of %v", what, res.decrypt, sentinelName(res.decrypt), allowed)
						}
						table.add(region.name, i-region.start, res.decrypt, res.rng)
						if t.Failed() {
							return // one broken region is enough to read
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

// forgeKeyring returns its data key for any message that has an EDK with
// provider id forgeProvider, and counts its calls.
type forgeKeyring struct {
	dek   []byte
	calls atomic.Int32
}

func (k *forgeKeyring) NewDataKey(context.Context, envelope.SuiteID, envelope.EncryptionContext, int64) (*envelope.DataKey, error) {
	return nil, errors.New("forgeKeyring: decrypt only")
}

func (k *forgeKeyring) OpenDataKey(_ context.Context, _ envelope.SuiteID, edks []envelope.EncryptedDataKey, _ envelope.EncryptionContext) (*envelope.DataKey, error) {
	k.calls.Add(1)
	for _, e := range edks {
		if e.ProviderID == forgeProvider {
			return envelope.NewDataKey(bytes.Clone(k.dek), nil), nil
		}
	}
	return nil, fmt.Errorf("%w: forgeKeyring: no %s EDK", envelope.ErrNoKEK, forgeProvider)
}

// countingKeyring counts the OpenDataKey calls reaching a keyring.
type countingKeyring struct {
	envelope.Keyring
	opens atomic.Int32
}

func (c *countingKeyring) OpenDataKey(ctx context.Context, s envelope.SuiteID, edks []envelope.EncryptedDataKey, ec envelope.EncryptionContext) (*envelope.DataKey, error) {
	c.opens.Add(1)
	return c.Keyring.OpenDataKey(ctx, s, edks, ec)
}

// forge describes a message to build by hand.
type forge struct {
	version  byte   // 2, or 1 for a legacy header
	suite    uint16 // 0x0478, or 0x0078 (v1, DEK = content key); others only for failing headers
	msgID    []byte
	ctx      []byte // serialized context, without its outer length
	edkCount int    // the count written; -1: len(edks)
	edks     []envelope.EncryptedDataKey
	content  byte // 2 framed, 1 non-framed
	frameLen uint32
	dek      []byte
}

func newForge() *forge {
	return &forge{version: 2, suite: 0x0478, msgID: randBytes(32), edkCount: -1,
		edks:    []envelope.EncryptedDataKey{{ProviderID: forgeProvider, ProviderInfo: []byte("k"), Ciphertext: []byte("wrapped")}},
		content: 2, frameLen: tamperFrame, dek: randBytes(32)}
}

func (f *forge) keyring() *forgeKeyring { return &forgeKeyring{dek: f.dek} }

// keys derives the content and commit keys as the format does.
func (f *forge) keys() (contentKey, commitKey []byte) {
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
func (f *forge) headerStart() []byte {
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
func (f *forge) header() []byte {
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

func (f *forge) bodyAAD(content string, seq uint32, n uint64) []byte {
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
func (f *forge) frame(seq uint32, final bool, pt []byte) []byte {
	return f.frameAs(seq, final, final, pt)
}

// frameAs seals a frame in the final (layoutFinal) or regular layout, with
// the final or regular content string (aadFinal) in its AAD.
func (f *forge) frameAs(seq uint32, layoutFinal, aadFinal bool, pt []byte) []byte {
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
	b = append(b, iv...)
	if layoutFinal {
		b = binary.BigEndian.AppendUint32(b, uint32(len(pt)))
	}
	return forgeGCM(contentKey).Seal(b, iv, pt, f.bodyAAD(content, seq, uint64(len(pt))))
}

// frames returns the framed body of pt, one slice per frame.
func (f *forge) frames(pt []byte) [][]byte {
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
func (f *forge) message(pt []byte) []byte {
	return slices.Concat(append([][]byte{f.header()}, f.frames(pt)...)...)
}

// single returns a non-framed body: IV | u64 claimed length | ciphertext | tag.
func (f *forge) single(pt []byte, claimed uint64) []byte {
	contentKey, _ := f.keys()
	iv := randBytes(12)
	b := binary.BigEndian.AppendUint64(bytes.Clone(iv), claimed)
	return forgeGCM(contentKey).Seal(b, iv, pt, f.bodyAAD("AWSKMSEncryptionClient Single Block", 1, claimed))
}

func serializeContext(t testing.TB, ec envelope.EncryptionContext) []byte {
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

	f := newForge()
	f.ctx = serializeContext(t, tamperContext)
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
	nf := newForge()
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
	v1 := newForge()
	v1.version, v1.suite, v1.msgID = 1, 0x0078, randBytes(16)
	v1.ctx = serializeContext(t, tamperContext)
	msg = v1.message(pt)
	kr := v1.keyring()
	if _, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrCommitmentPolicy) {
		t.Fatalf("v1 message under the default policy: %v, want ErrCommitmentPolicy", err)
	}
	if kr.calls.Load() != 0 {
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
func expectForgery(t *testing.T, kr envelope.Keyring, opts envelope.DecryptOptions, msg, truePT []byte, want, wantRange error) {
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

// splitFrames splits a real framed message (frame length fl, unsigned) into
// header and frames.
func splitFrames(t testing.TB, msg []byte, fl int) (header []byte, frames [][]byte) {
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
	encrypt := func(kr envelope.Keyring) []byte {
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
		f := newForge()
		body := f.message(pt)[len(f.header()):]
		g := *f
		g.dek = randBytes(32)
		expectForgery(t, g.keyring(), none, append(g.header(), body...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("header of a message under another KEK, body kept", func(t *testing.T) {
		t.Parallel()
		_, f1 := splitFrames(t, encrypt(ks.kr), tamperFrame)
		h2, _ := splitFrames(t, encrypt(ks.other), tamperFrame)
		expectForgery(t, ks.other, none, slices.Concat(append([][]byte{h2}, f1...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("frame swapped between two messages of one keyring", func(t *testing.T) {
		t.Parallel()
		ha, fa := splitFrames(t, encrypt(ks.kr), tamperFrame)
		_, fb := splitFrames(t, encrypt(ks.kr), tamperFrame)
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
		f := newForge()
		g := *f
		g.msgID = randBytes(32)
		frames := f.frames(pt)
		frames[1] = g.frames(pt)[1]
		expectForgery(t, f.keyring(), none, slices.Concat(append([][]byte{f.header()}, frames...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("frames reordered", func(t *testing.T) {
		t.Parallel()
		h, frames := splitFrames(t, encrypt(ks.kr), tamperFrame)
		swapped := slices.Clone(frames)
		swapped[0], swapped[1] = swapped[1], swapped[0]
		expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{h}, swapped...)...), pt, envelope.ErrMalformed, envelope.ErrMalformed)
		// The same with the sequence numbers put back in order: only the
		// frame authentication can tell.
		renumbered := [][]byte{bytes.Clone(frames[1]), bytes.Clone(frames[0])}
		binary.BigEndian.PutUint32(renumbered[0], 1)
		binary.BigEndian.PutUint32(renumbered[1], 2)
		renumbered = append(renumbered, frames[2:]...)
		t.Run("renumbered", func(t *testing.T) {
			expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{h}, renumbered...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
		})
	})
	t.Run("final frame replaced by a regular frame", func(t *testing.T) {
		t.Parallel()
		f := newForge()
		full := pt[:320-64] // 256 bytes: frames 1-3 regular, frame 4 final of 64
		frames := f.frames(full)
		// Frame 4 sealed as a regular frame and the message ends there.
		frames[3] = f.frame(4, false, full[192:])
		msg := slices.Concat(append([][]byte{f.header()}, frames...)...)
		expectForgery(t, f.keyring(), none, msg, full, envelope.ErrTruncated, nil)
	})
	t.Run("final frame sealed with the regular content string", func(t *testing.T) {
		t.Parallel()
		f := newForge()
		frames := f.frames(pt)
		last := len(frames) - 1
		frames[last] = f.frameAs(uint32(last+1), true, false, pt[last*tamperFrame:])
		expectForgery(t, f.keyring(), none, slices.Concat(append([][]byte{f.header()}, frames...)...), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("regular frame relabelled final, rest dropped", func(t *testing.T) {
		t.Parallel()
		// The truncation attack: frame 2's ciphertext dressed as a final frame.
		h, frames := splitFrames(t, encrypt(ks.kr), tamperFrame)
		reg := frames[1]
		final := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
		final = append(final, reg[:16]...) // seq 2, IV
		final = binary.BigEndian.AppendUint32(final, tamperFrame)
		final = append(final, reg[16:]...)
		expectForgery(t, ks.kr, none, slices.Concat(h, frames[0], final), pt, envelope.ErrFrameAuth, envelope.ErrFrameAuth)
	})
	t.Run("final frame dropped", func(t *testing.T) {
		t.Parallel()
		h, frames := splitFrames(t, encrypt(ks.kr), tamperFrame)
		expectForgery(t, ks.kr, none, slices.Concat(append([][]byte{h}, frames[:len(frames)-1]...)...), pt, envelope.ErrTruncated, envelope.ErrMalformed)
	})
	t.Run("frames after the final frame", func(t *testing.T) {
		t.Parallel()
		h, frames := splitFrames(t, encrypt(ks.kr), tamperFrame)
		expectForgery(t, ks.kr, none, slices.Concat(append(append([][]byte{h}, frames...), frames[0])...), pt, envelope.ErrMalformed, envelope.ErrMalformed)
	})
	t.Run("zero EDKs", func(t *testing.T) {
		t.Parallel()
		f := newForge()
		f.edks = nil
		kr := f.keyring()
		expectForgery(t, kr, none, f.message(pt), pt, envelope.ErrMalformed, envelope.ErrMalformed)
		if kr.calls.Load() != 0 {
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
		ckr := &countingKeyring{Keyring: ks.kr}
		expectForgery(t, ckr, envelope.DecryptOptions{MaxEncryptedDataKeys: 1}, msg, pt, envelope.ErrTooManyEDKs, envelope.ErrTooManyEDKs)
		if ckr.opens.Load() != 0 {
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
		f := newForge()
		f.edkCount = math.MaxUint16
		cut := f.headerStart()
		for _, opts := range []envelope.DecryptOptions{{}, {MaxEncryptedDataKeys: 1}, {MaxEncryptedDataKeys: 65534}} {
			kr := f.keyring()
			_, _, err := envelope.Decrypt(ctx, cut, kr, opts)
			if !errors.Is(err, envelope.ErrTooManyEDKs) {
				t.Errorf("max %d, header cut after the EDK count: %v, want ErrTooManyEDKs", opts.MaxEncryptedDataKeys, err)
			}
			if kr.calls.Load() != 0 {
				t.Errorf("the keyring was called")
			}
		}
		// Without a bound the same bytes are merely truncated.
		if _, _, err := envelope.Decrypt(ctx, cut, f.keyring(), envelope.DecryptOptions{MaxEncryptedDataKeys: -1}); !errors.Is(err, envelope.ErrTruncated) {
			t.Errorf("no bound, header cut after the EDK count: %v, want ErrTruncated", err)
		}
		if _, err := envelope.ParseHeader(bytes.NewReader(cut)); !errors.Is(err, envelope.ErrTruncated) {
			t.Errorf("ParseHeader: %v, want ErrTruncated", err)
		}
	})
	t.Run("unknown suite", func(t *testing.T) {
		t.Parallel()
		for _, id := range []uint16{0x0000, 0x0479, 0x9999, 0xFFFF} {
			f := newForge()
			f.suite = id
			kr := f.keyring()
			t.Run(fmt.Sprintf("%04x", id), func(t *testing.T) {
				expectForgery(t, kr, none, f.message(pt), pt, envelope.ErrUnsupported, envelope.ErrUnsupported)
				if _, err := envelope.ParseHeader(bytes.NewReader(f.message(pt))); !errors.Is(err, envelope.ErrUnsupported) {
					t.Errorf("ParseHeader: %v, want ErrUnsupported", err)
				}
				if kr.calls.Load() != 0 {
					t.Errorf("the keyring was called")
				}
			})
		}
	})
	t.Run("v1 suite", func(t *testing.T) {
		t.Parallel()
		f := newForge()
		f.version, f.suite, f.msgID = 1, 0x0078, randBytes(16)
		kr := f.keyring()
		for _, p := range []envelope.CommitmentPolicy{envelope.RequireEncryptRequireDecrypt} {
			expectForgery(t, kr, envelope.DecryptOptions{Policy: p}, f.message(pt), pt, envelope.ErrCommitmentPolicy, envelope.ErrCommitmentPolicy)
		}
		if kr.calls.Load() != 0 {
			t.Errorf("the keyring was called for a message the policy refuses")
		}
		// A v1 suite id in a v2 header is malformed whatever the policy.
		g := newForge()
		g.suite = 0x0078
		t.Run("in a v2 header", func(t *testing.T) {
			expectForgery(t, g.keyring(), envelope.DecryptOptions{Policy: envelope.RequireEncryptAllowDecrypt}, g.message(pt), pt, envelope.ErrMalformed, envelope.ErrMalformed)
		})
	})
	t.Run("frame length above the maximum", func(t *testing.T) {
		t.Parallel()
		msg := encrypt(ks.kr)
		ckr := &countingKeyring{Keyring: ks.kr}
		expectForgery(t, ckr, envelope.DecryptOptions{MaxFrameSize: tamperFrame - 1}, msg, pt, envelope.ErrMalformed, envelope.ErrMalformed)
		if ckr.opens.Load() != 0 {
			t.Errorf("the keyring was called for a frame length above the limit")
		}
		if _, _, err := envelope.Decrypt(ctx, msg, ks.kr, envelope.DecryptOptions{MaxFrameSize: tamperFrame}); err != nil {
			t.Errorf("frame length equal to the limit: %v", err)
		}
		for _, fl := range []uint32{envelope.DefaultMaxFrameSize + 1, math.MaxUint32} {
			f := newForge()
			f.frameLen = fl
			kr := f.keyring()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := envelope.Decrypt(ctx, f.header(), kr, none)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, envelope.ErrMalformed) {
				t.Errorf("frame length %d: %v, want ErrMalformed", fl, err)
			}
			if kr.calls.Load() != 0 {
				t.Errorf("frame length %d: the keyring was called", fl)
			}
			t.Logf("frame length %d: %v (%d bytes allocated)", fl, err, after.TotalAlloc-before.TotalAlloc)
		}
		f := newForge()
		f.frameLen = 0
		expectForgery(t, f.keyring(), none, f.message(pt), pt, envelope.ErrMalformed, envelope.ErrMalformed)
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
			ckr := &countingKeyring{Keyring: ks.kr}
			res := decryptAllPaths(t, fmt.Sprint(tc.req), ckr, envelope.DecryptOptions{RequiredContext: tc.req}, msg, pt, true, true)
			for _, err := range []error{res.decrypt, res.stream, res.rng} {
				if !errors.Is(err, envelope.ErrContext) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.name)) {
					t.Errorf("required %v: %v, want ErrContext naming %q", tc.req, err, tc.name)
				}
				checkOneSentinel(t, "required context", err)
			}
			if ckr.opens.Load() != 0 {
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
		expectForgery(t, ks.kr, none, newForge().message(pt), pt, envelope.ErrNoKEK, envelope.ErrNoKEK)
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
		f := newForge()
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
	f := newForge()
	f.content, f.frameLen = 1, 0
	msg := append(f.header(), f.single(randBytes(1000), 1000)...)
	if _, _, err := envelope.Decrypt(ctx, msg[:len(msg)-500], f.keyring(), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrTruncated) {
		t.Errorf("cut non-framed body: %v, want ErrTruncated", err)
	}
	// A non-framed header with a frame length.
	g := newForge()
	g.content, g.frameLen = 1, 64
	if _, _, err := envelope.Decrypt(ctx, append(g.header(), g.single(nil, 0)...), g.keyring(), envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrMalformed) {
		t.Errorf("non-framed header with a frame length: %v, want ErrMalformed", err)
	}
}
