package envelope_test

// Fuzz targets. The seed corpus lives in testdata/fuzz/FuzzXxx/: real
// messages made under the fixed key below (both suites, several frame sizes,
// empty plaintext, a non-framed and a v1 message, two EDKs) and the
// ESDK-made vectors of ../testdata/esdk. TestWriteFuzzCorpus regenerates it:
//
//	HSMENV_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./envelope/
//
// Run a target with e.g.
//
//	go test -run '^$' -fuzz '^FuzzDecrypt$' -fuzztime 60s ./envelope/

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// The fixed key is the ESDK vectors' raw AES key, so the fuzzer can also
// reach the body of the JS-made messages.
const (
	fzVectorDir = "../testdata/esdk"
	fzNamespace = "hsmenv-test"
	fzKeyName   = "aes256"
	// fzPlaintextKey is the context key of the seeds made here: its value n
	// says the plaintext is fzPlaintext(n). The context is authenticated, so
	// whatever decrypts under it must be that plaintext.
	fzPlaintextKey = "fuzz-plaintext"
)

type fzFixture struct {
	kek *rawaes.KEK
	kr  *envelope.Keyring
	// js maps the message id of each ESDK vector to its plaintext.
	js map[string][]byte
	// vectors are the ESDK messages, by file name.
	vectors map[string][]byte
}

var fzFixtureOnce = sync.OnceValues(func() (*fzFixture, error) {
	key, err := os.ReadFile(filepath.Join(fzVectorDir, "aes256.key"))
	if err != nil {
		return nil, err
	}
	kek, err := rawaes.New(fzNamespace, fzKeyName, key)
	if err != nil {
		return nil, err
	}
	kr := envelope.NewKeyring(kek)
	fx := &fzFixture{kek: kek, kr: kr, js: map[string][]byte{}, vectors: map[string][]byte{}}
	sidecars, err := filepath.Glob(filepath.Join(fzVectorDir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, path := range sidecars {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var v struct{ Plaintext, Ciphertext string }
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		msg, err := os.ReadFile(filepath.Join(fzVectorDir, v.Ciphertext))
		if err != nil {
			return nil, err
		}
		pt, err := os.ReadFile(filepath.Join(fzVectorDir, v.Plaintext))
		if err != nil {
			return nil, err
		}
		h, err := envelope.ParseHeader(bytes.NewReader(msg))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", v.Ciphertext, err)
		}
		fx.js[string(h.MessageID)] = pt
		fx.vectors[v.Ciphertext] = msg
	}
	return fx, nil
})

func fzFix(t testing.TB) *fzFixture {
	t.Helper()
	fx, err := fzFixtureOnce()
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// fzPlaintext is the deterministic plaintext of n bytes of the seeds. It is
// seeded by n, so a shorter plaintext is not a prefix of a longer one.
func fzPlaintext(n int) []byte {
	var seed [32]byte
	copy(seed[:], "hsmenv fuzz plaintext")
	binary.BigEndian.PutUint64(seed[24:], uint64(n))
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// expected returns the plaintext an authenticated header promises: from the
// context of the seeds made here, or by message id for the ESDK vectors.
func (fx *fzFixture) expected(h *envelope.Header) ([]byte, bool) {
	if v, ok := h.Context[fzPlaintextKey]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<20 {
			return nil, false
		}
		return fzPlaintext(n), true
	}
	pt, ok := fx.js[string(h.MessageID)]
	return pt, ok
}

// fzSeed is one seed message.
type fzSeed struct {
	name string
	msg  []byte
}

// seeds makes the seed messages: framed ones through Encrypt, the
// decrypt-only formats (non-framed, v1) by hand with a data key wrapped by
// the fixed KEK, plus the ESDK vectors.
func (fx *fzFixture) seeds(t testing.TB) []fzSeed {
	t.Helper()
	ctx := context.Background()
	var out []fzSeed
	other, err := rawaes.New("fuzz-other", "throwaway", randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	two := envelope.NewKeyring(fx.kek, other)
	for _, s := range []struct {
		suite     envelope.SuiteID
		frame, n  int
		twoEDKs   bool
		extraPair bool
	}{
		{envelope.SuiteCommit, 64, 0, false, false},
		{envelope.SuiteCommit, 64, 1, false, true},
		{envelope.SuiteCommit, 64, 300, true, true},
		{envelope.SuiteCommit, 1, 5, false, false},
		{envelope.SuiteCommit, 7, 21, false, false}, // a multiple of the frame size
		{envelope.SuiteCommit, 4096, 100, false, false},
		{envelope.SuiteCommitECDSA, 64, 0, false, false},
		{envelope.SuiteCommitECDSA, 64, 300, true, true},
		{envelope.SuiteCommitECDSA, 7, 20, false, false},
		{envelope.SuiteCommitECDSA, 4096, 1, false, false},
	} {
		ec := envelope.EncryptionContext{fzPlaintextKey: strconv.Itoa(s.n)}
		if s.extraPair {
			ec["ключ"] = "値"
		}
		kr := fx.kr
		if s.twoEDKs {
			kr = two
		}
		msg, err := envelope.Encrypt(ctx, fzPlaintext(s.n), kr, envelope.EncryptOptions{Suite: s.suite, FrameSize: s.frame, Context: ec})
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("hsmenv-%v-frame%d-n%d", s.suite, s.frame, s.n)
		if s.twoEDKs {
			name += "-2edks"
		}
		out = append(out, fzSeed{name, msg})
	}

	// Decrypt-only formats, built by hand around a data key the fixed KEK
	// wraps.
	hand := func(version byte, suite uint16, idLen int, n int) *msgForge {
		ec := envelope.EncryptionContext{fzPlaintextKey: strconv.Itoa(n)}
		f := newMsgForge()
		f.version, f.suite, f.msgID = version, suite, randBytes(idLen)
		f.ctx = tamperSerializeContext(t, ec)
		edk, err := fx.kek.Wrap(ctx, f.dek, ec)
		if err != nil {
			t.Fatal(err)
		}
		f.edks = []envelope.EncryptedDataKey{edk}
		return f
	}
	nf := hand(2, 0x0478, 32, 50)
	nf.content, nf.frameLen = 1, 0
	out = append(out, fzSeed{"hsmenv-0478-nonframed-n50", append(nf.header(), nf.single(fzPlaintext(50), 50)...)})
	v1 := hand(1, 0x0078, 16, 100)
	out = append(out, fzSeed{"hsmenv-v1-0078-frame64-n100", v1.message(fzPlaintext(100))})

	names := make([]string, 0, len(fx.vectors))
	for name := range fx.vectors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, fzSeed{"esdk-" + strings.TrimSuffix(name, ".esdk"), fx.vectors[name]})
	}
	return out
}

// fzRangeArgs are the (offset, length) pairs each FuzzRange seed gets.
var fzRangeArgs = []struct {
	off int64
	n   uint16
}{{0, 65535}, {63, 2}, {-1, 1}, {1 << 62, 1}, {4095, 4098}}

// TestWriteFuzzCorpus writes the seed corpus files (see the file comment).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("HSMENV_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set HSMENV_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	fx := fzFix(t)
	write := func(target, name string, values ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case int64:
				fmt.Fprintf(&b, "int64(%d)\n", v)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", v)
			default:
				t.Fatalf("type %T", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range fx.seeds(t) {
		write("FuzzParseHeader", s.name, s.msg)
		write("FuzzDecrypt", s.name, s.msg)
		// Messages OpenRange refuses (signed, non-framed, v1, not under the
		// fixed key) get one (offset, length) pair, the others all.
		args := fzRangeArgs
		if rr, err := envelope.OpenRange(context.Background(), bytes.NewReader(s.msg), int64(len(s.msg)), fx.kr, envelope.DecryptOptions{}); err != nil {
			args = args[:1]
		} else {
			rr.Close()
		}
		for _, a := range args {
			write("FuzzRange", fmt.Sprintf("%s-at%d-len%d", s.name, a.off, a.n), s.msg, a.off, a.n)
		}
	}
	// Header-only oddities for the parser.
	f := newMsgForge()
	f.edks = nil
	write("FuzzParseHeader", "zero-edks", f.header())
	f = newMsgForge()
	f.edkCount = 65535
	write("FuzzParseHeader", "edk-count-65535-cut", f.headerStart())
	f = newMsgForge()
	f.version, f.suite, f.msgID = 1, 0x0378, randBytes(16)
	write("FuzzParseHeader", "v1-0378", f.header())
	// Not messages, and starts that only nearly are.
	write("FuzzParseHeader", "not-a-message-empty", []byte{})
	write("FuzzParseHeader", "not-a-message-text", []byte("hello, this is not a message\n"))
	write("FuzzParseHeader", "not-a-message-v2-suite-1498", append([]byte{2, 0x14, 0x98}, randBytes(40)...))
	write("FuzzParseHeader", "not-a-message-v1-type-52", append([]byte{1, 0x52, 0, 0x78}, randBytes(40)...))
	write("FuzzParseHeader", "v1-type-only", []byte{1, 0x80})
}

// TestFuzzCorpusDecrypts guards the seed corpus: every FuzzDecrypt seed
// file must be a message the fixed key opens (the RSA-only ESDK vectors
// excepted), or the fuzzer never reaches the body.
func TestFuzzCorpusDecrypts(t *testing.T) {
	t.Parallel()
	fx := fzFix(t)
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecrypt", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d FuzzDecrypt seed files", len(files))
	}
	opened, seeds := 0, 0
	for _, path := range files {
		if fuzzerFound.MatchString(filepath.Base(path)) {
			continue // found by fuzzing (kept as corpus), mostly not a valid message
		}
		seeds++
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a one-[]byte corpus file", path)
		}
		msg, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pt, h, err := envelope.Decrypt(context.Background(), []byte(msg), fx.kr, fzDecryptOpts)
		if strings.Contains(path, "esdk-rsa-") {
			if !errors.Is(err, envelope.ErrNoKEK) {
				t.Errorf("%s: %v, want ErrNoKEK (RSA-only vector)", path, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if want, ok := fx.expected(h); !ok || !bytes.Equal(pt, want) {
			t.Errorf("%s: decrypts to something else than its plaintext", path)
		}
		opened++
	}
	t.Logf("%d of %d FuzzDecrypt seeds open under the fixed key (%d corpus files in all)", opened, seeds, len(files))
}

// fuzzerFound matches the names go test -fuzz gives the inputs it keeps
// (copied into testdata/fuzz after a run); seeds have descriptive names.
var fuzzerFound = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkFuzzErr checks an error of the package on fuzzed input.
func checkFuzzErr(t *testing.T, what string, err error) {
	t.Helper()
	if name := sentinelName(err); name == "NONE" || strings.Contains(name, "+") {
		t.Fatalf("%s: error wraps %s sentinels, want exactly one: %v", what, name, err)
	}
}

// fzNotMessage reports whether no message starts as data does (what
// ParseHeader calls ErrNotMessage): it is empty, or its version byte, v1
// message type or algorithm suite is none a message has.
func fzNotMessage(data []byte) bool {
	switch {
	case len(data) == 0 || data[0] != 1 && data[0] != 2:
		return true
	case data[0] == 1 && len(data) >= 2 && data[1] != 0x80:
		return true
	}
	at := 1 // the suite's offset
	if data[0] == 1 {
		at = 2
	}
	return len(data) >= at+2 && envelope.SuiteID(binary.BigEndian.Uint16(data[at:])).DataKeyLen() == 0
}

// FuzzParseHeader: ParseHeader never panics, and what it accepts is a
// consistent header that ends exactly where its fields say.
func FuzzParseHeader(f *testing.F) {
	fx := fzFix(f)
	for _, s := range fx.seeds(f) {
		f.Add(s.msg)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := envelope.ParseHeader(bytes.NewReader(data))
		if err != nil {
			if h != nil {
				t.Fatalf("ParseHeader failed (%v) and returned a header", err)
			}
			checkFuzzErr(t, "ParseHeader", err)
			if !errors.Is(err, envelope.ErrTruncated) && !errors.Is(err, envelope.ErrMalformed) && !errors.Is(err, envelope.ErrUnsupported) && !errors.Is(err, envelope.ErrTooManyEDKs) {
				t.Fatalf("ParseHeader: %v: not truncated, malformed, unsupported or too many EDKs", err)
			}
			if got, want := errors.Is(err, envelope.ErrNotMessage), fzNotMessage(data); got != want {
				t.Fatalf("ParseHeader: %v: ErrNotMessage %v, but the input can start a message: %v", err, got, !want)
			}
			return
		}
		if s := fzHeaderProblem(h); s != "" {
			t.Fatalf("ParseHeader accepted a bad header: %s: %+v", s, h)
		}
		want := fzHeaderSize(h)
		if h.Size() != want {
			t.Fatalf("Size() = %d, the fields add up to %d", h.Size(), want)
		}
		if h.Size() > len(data) {
			t.Fatalf("Size() = %d for %d bytes of input", h.Size(), len(data))
		}
		// The header is self-delimiting: exactly Size() bytes parse the same,
		// one fewer is truncated.
		h2, err := envelope.ParseHeader(bytes.NewReader(data[:h.Size()]))
		if err != nil || h2.Size() != h.Size() || h2.Suite != h.Suite || !bytes.Equal(h2.MessageID, h.MessageID) || len(h2.EDKs) != len(h.EDKs) {
			t.Fatalf("the first Size() bytes alone: %v", err)
		}
		if _, err := envelope.ParseHeader(bytes.NewReader(data[:h.Size()-1])); !errors.Is(err, envelope.ErrTruncated) {
			t.Fatalf("the first Size()-1 bytes: %v, want ErrTruncated", err)
		}
	})
}

// fzHeaderProblem returns what is wrong with a parsed header, or "".
func fzHeaderProblem(h *envelope.Header) string {
	switch {
	case h.Version != 1 && h.Version != 2:
		return fmt.Sprintf("version %d", h.Version)
	case h.Suite.DataKeyLen() == 0:
		return fmt.Sprintf("unknown suite %v", h.Suite)
	case h.Version == 2 && h.Suite != envelope.SuiteCommit && h.Suite != envelope.SuiteCommitECDSA:
		return fmt.Sprintf("v2 header with suite %v", h.Suite)
	case h.Version == 1 && (h.Suite == envelope.SuiteCommit || h.Suite == envelope.SuiteCommitECDSA):
		return fmt.Sprintf("v1 header with suite %v", h.Suite)
	case h.Version == 2 && len(h.MessageID) != 32, h.Version == 1 && len(h.MessageID) != 16:
		return fmt.Sprintf("%d-byte message id", len(h.MessageID))
	case len(h.EDKs) == 0 || len(h.EDKs) > 65535:
		return fmt.Sprintf("%d EDKs", len(h.EDKs))
	case h.Framed != (h.FrameLength != 0):
		return fmt.Sprintf("framed %v with frame length %d", h.Framed, h.FrameLength)
	case h.Version == 2 && len(h.CommitKey) != 32, h.Version == 1 && h.CommitKey != nil:
		return fmt.Sprintf("%d-byte commit key", len(h.CommitKey))
	case h.Context == nil:
		return "nil context"
	}
	for k, v := range h.Context {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Sprintf("context pair %q=%q is not UTF-8", k, v)
		}
	}
	for i, e := range h.EDKs {
		if len(e.ProviderID) > 65535 || len(e.ProviderInfo) > 65535 || len(e.Ciphertext) > 65535 {
			return fmt.Sprintf("EDK %d has an over-long field", i+1)
		}
	}
	return ""
}

// fzHeaderSize adds up the serialized size of a parsed header.
func fzHeaderSize(h *envelope.Header) int {
	ctx := 0
	if len(h.Context) > 0 {
		ctx = 2
		for k, v := range h.Context {
			ctx += 4 + len(k) + len(v)
		}
	}
	edks := 2
	for _, e := range h.EDKs {
		edks += 6 + len(e.ProviderID) + len(e.ProviderInfo) + len(e.Ciphertext)
	}
	if h.Version == 1 {
		// version, type, suite, id, ctx, EDKs, content type, reserved, IV
		// length, frame length, header IV, tag
		return 1 + 1 + 2 + 16 + 2 + ctx + edks + 1 + 4 + 1 + 4 + 12 + 16
	}
	return 1 + 2 + 32 + 2 + ctx + edks + 1 + 4 + 32 + 16
}

// fzDecryptOpts decrypts everything the format allows, v1 included, so the
// fuzzer reaches the legacy paths too.
var fzDecryptOpts = envelope.DecryptOptions{Policy: envelope.RequireEncryptAllowDecrypt}

// FuzzDecrypt: Decrypt and the streaming Decrypter never panic, never
// release plaintext that is not the one the (authenticated) header promises,
// and accept only messages the seeds made.
func FuzzDecrypt(f *testing.F) {
	fx := fzFix(f)
	for _, s := range fx.seeds(f) {
		f.Add(s.msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ctx := context.Background()
		pt, h, derr := envelope.Decrypt(ctx, msg, fx.kr, fzDecryptOpts)
		if derr != nil {
			if pt != nil || h != nil {
				t.Fatalf("Decrypt failed (%v) and returned %d bytes and a header", derr, len(pt))
			}
			checkFuzzErr(t, "Decrypt", derr)
		} else {
			want, ok := fx.expected(h)
			if !ok {
				t.Fatalf("Decrypt accepted a message no seed made: message id %x, context %v", h.MessageID, h.Context)
			}
			if !bytes.Equal(pt, want) {
				t.Fatalf("FORGERY: Decrypt returned %d bytes that are not the plaintext of the message (%d bytes)", len(pt), len(want))
			}
		}

		// The stream, read in small pieces: any byte it returns must be
		// the promised plaintext, and it fails exactly when Decrypt does.
		d, serr := envelope.NewDecrypter(ctx, bytes.NewReader(msg), fx.kr, envelope.DecryptOptions{Policy: fzDecryptOpts.Policy, Concurrency: 1})
		if serr == nil {
			want, ok := fx.expected(d.Header())
			if !ok {
				t.Fatalf("NewDecrypter authenticated a header no seed made: message id %x", d.Header().MessageID)
			}
			var out []byte
			buf := make([]byte, 97)
			for {
				n, err := d.Read(buf)
				out = append(out, buf[:n]...)
				if !bytes.HasPrefix(want, out) {
					t.Fatalf("the stream released %d bytes that are not the plaintext (then: %v)", len(out), err)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					serr = err
					break
				}
			}
			d.Close()
			if serr == nil && len(out) != len(want) {
				t.Fatalf("the stream ended after %d of %d bytes without an error", len(out), len(want))
			}
		}
		if (serr == nil) != (derr == nil) {
			t.Fatalf("Decrypt says %v, the stream %v", derr, serr)
		}
		if serr != nil {
			checkFuzzErr(t, "stream", serr)
		}
	})
}

// FuzzRange: OpenRange and ReadAt at any offset never panic, return only
// the promised plaintext, and agree with Decrypt: a message Decrypt accepts
// (framed, unsigned) opens and reads in full; one whose every byte ReadAt
// serves, Decrypt accepts.
func FuzzRange(f *testing.F) {
	fx := fzFix(f)
	for _, s := range fx.seeds(f) {
		for _, a := range fzRangeArgs {
			f.Add(s.msg, a.off, a.n)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte, off int64, n uint16) {
		ctx := context.Background()
		pt, h, derr := envelope.Decrypt(ctx, msg, fx.kr, envelope.DecryptOptions{})
		rr, rerr := envelope.OpenRange(ctx, bytes.NewReader(msg), int64(len(msg)), fx.kr, envelope.DecryptOptions{})
		if rerr != nil {
			checkFuzzErr(t, "OpenRange", rerr)
			if derr == nil && h.Framed && !h.Suite.Signed() {
				t.Fatalf("Decrypt accepts the message, OpenRange refuses it: %v", rerr)
			}
			return
		}
		defer rr.Close()
		if derr == nil && !bytes.Equal(pt, mustExpected(t, fx, h)) {
			t.Fatalf("FORGERY: Decrypt returned bytes that are not the plaintext")
		}
		want := mustExpected(t, fx, rr.Header())
		if rr.Size() != int64(len(want)) {
			t.Fatalf("OpenRange: Size() = %d, the plaintext is %d bytes", rr.Size(), len(want))
		}

		p := make([]byte, n)
		got, err := rr.ReadAt(p, off)
		switch {
		case got < 0 || got > len(p):
			t.Fatalf("ReadAt(%d bytes, %d) = %d", len(p), off, got)
		case off < 0:
			if got != 0 || !errors.Is(err, envelope.ErrRange) {
				t.Fatalf("ReadAt at %d: %d, %v; want 0, ErrRange", off, got, err)
			}
		case off >= rr.Size():
			if got != 0 || (len(p) > 0 && err != io.EOF) {
				t.Fatalf("ReadAt at %d past the end %d: %d, %v", off, rr.Size(), got, err)
			}
		default:
			if !bytes.Equal(p[:got], want[off:off+int64(got)]) {
				t.Fatalf("FORGERY: ReadAt(%d bytes, %d) returned bytes that are not the plaintext", len(p), off)
			}
			if got < len(p) && err == nil {
				t.Fatalf("ReadAt(%d bytes, %d): short read (%d) without an error", len(p), off, got)
			}
			if err != nil && err != io.EOF {
				checkFuzzErr(t, "ReadAt", err)
			}
			if derr == nil {
				if full := int(min(int64(len(p)), rr.Size()-off)); got != full || (err != nil && err != io.EOF) {
					t.Fatalf("Decrypt accepts the message, ReadAt(%d bytes, %d) = %d, %v", len(p), off, got, err)
				}
			}
		}

		all, err := io.ReadAll(io.NewSectionReader(rr, 0, rr.Size()))
		if !bytes.HasPrefix(want, all) {
			t.Fatalf("FORGERY: reading the whole range returned bytes that are not the plaintext")
		}
		if (err == nil) != (derr == nil) {
			t.Fatalf("Decrypt says %v, reading the whole range %v", derr, err)
		}
	})
}

func mustExpected(t *testing.T, fx *fzFixture, h *envelope.Header) []byte {
	t.Helper()
	want, ok := fx.expected(h)
	if !ok {
		t.Fatalf("authenticated a header no seed made: message id %x, context %v", h.MessageID, h.Context)
	}
	return want
}
