package envelope

// FuzzContext: the encryption context parser and serializer. Seeds live in
// testdata/fuzz/FuzzContext/: the contexts of the ESDK vectors
// (../testdata/esdk) and of hsmenv-made messages, plus unsorted, duplicate,
// empty-key, non-UTF-8 and truncated ones. TestWriteContextCorpus
// regenerates them:
//
//	HSMENV_WRITE_FUZZ_CORPUS=1 go test -run TestWriteContextCorpus ./envelope/
//
// Run it with
//
//	go test -run '^$' -fuzz '^FuzzContext$' -fuzztime 60s ./envelope/

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// fcPairs serializes pairs in the given order, duplicates and all, with a
// pair count of count (len(pairs) if negative).
func fcPairs(count int, pairs ...string) []byte {
	if count < 0 {
		count = len(pairs) / 2
	}
	b := binary.BigEndian.AppendUint16(nil, uint16(count))
	for _, s := range pairs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

// fcSeeds are serialized contexts, well-formed or not.
func fcSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{
		"empty":            nil,
		"one-pair":         fcPairs(-1, "purpose", "backup"),
		"sorted":           fcPairs(-1, "a", "1", "b", "2", "ключ", "値"),
		"unsorted":         fcPairs(-1, "b", "2", "a", "1"),
		"duplicate":        fcPairs(-1, "a", "1", "a", "2"),
		"duplicate-apart":  fcPairs(-1, "a", "1", "b", "", "a", "1"),
		"empty-key":        fcPairs(-1, "", "v"),
		"empty-value":      fcPairs(-1, "k", ""),
		"count-zero":       fcPairs(0),
		"count-too-high":   fcPairs(3, "a", "1"),
		"count-too-low":    fcPairs(1, "a", "1", "b", "2"),
		"not-utf8-key":     fcPairs(-1, "\xff", "v"),
		"not-utf8-value":   fcPairs(-1, "k", "\xc3"),
		"surrogate":        fcPairs(-1, "k", "\xed\xa0\x80"),
		"truncated":        fcPairs(-1, "purpose", "backup")[:10],
		"one-byte":         {0},
		"public-key":       fcPairs(-1, "aws-crypto-public-key", "A0dTbR2ZRXd4Q1y1yERUEGGkL+4FXvTPjDvLIMvK+5E0eP0EybZOLUVn8GAuJ2DTlw=="),
		"long-value":       fcPairs(-1, "k", strings.Repeat("v", 1000)),
		"prefix-order":     fcPairs(-1, "a", "1", "aa", "2", "ab", "3", "b", "4"),
		"utf8-byte-order":  fcPairs(-1, "z", "1", "é", "2", "\U0001F600", "3"),
		"utf16-order-trap": fcPairs(-1, "\uff61", "1", "\U0001F600", "2"), // UTF-16 orders these the other way
	}
	// Real contexts: of the ESDK vectors and of messages made here.
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "esdk", "*.esdk"))
	for _, path := range files {
		msg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ser, err := h.Context.Serialize()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		seeds["esdk-"+strings.TrimSuffix(filepath.Base(path), ".esdk")] = ser
	}
	for name, ec := range map[string]EncryptionContext{
		"hsmenv-fuzz-plaintext": {"fuzz-plaintext": "300", "ключ": "値"},
		"hsmenv-cli":            {"purpose": "test", "ключ": "値"},
	} {
		ser, err := ec.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		seeds[name] = ser
	}
	return seeds
}

func TestWriteContextCorpus(t *testing.T) {
	if os.Getenv("HSMENV_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set HSMENV_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzContext")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fcSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fcModel reads b the way the format defines a serialized context, apart
// from parseContext: the pairs in order, or ok=false if b is not a count
// followed by exactly that many length-prefixed key/value pairs.
func fcModel(b []byte) (pairs [][2]string, ok bool) {
	if len(b) == 0 {
		return nil, true
	}
	if len(b) < 2 {
		return nil, false
	}
	n := int(b[0])<<8 | int(b[1])
	rest := b[2:]
	field := func() (string, bool) {
		if len(rest) < 2 {
			return "", false
		}
		l := int(rest[0])<<8 | int(rest[1])
		if len(rest) < 2+l {
			return "", false
		}
		s := string(rest[2 : 2+l])
		rest = rest[2+l:]
		return s, true
	}
	for i := 0; i < n; i++ {
		k, ok1 := field()
		v, ok2 := field()
		if !ok1 || !ok2 {
			return nil, false
		}
		pairs = append(pairs, [2]string{k, v})
	}
	return pairs, len(rest) == 0
}

// fcHeader wraps a serialized context in an otherwise well-formed v2 header
// (its tag is not checked by parsing).
func fcHeader(ctx []byte) []byte {
	b := []byte{2}
	b = binary.BigEndian.AppendUint16(b, uint16(SuiteCommit))
	b = append(b, bytes.Repeat([]byte{0x11}, messageIDLenV2)...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ctx)))
	b = append(b, ctx...)
	b = binary.BigEndian.AppendUint16(b, 1)
	for _, f := range []string{"hsmenv", "info", "ciphertext"} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	b = append(b, contentFramed)
	b = binary.BigEndian.AppendUint32(b, 4096)
	b = append(b, bytes.Repeat([]byte{0x22}, 32)...) // commit key
	return append(b, bytes.Repeat([]byte{0x33}, tagLen)...)
}

// FuzzContext: parseContext never panics and accepts exactly the format
// (fcModel) minus what the decoder refuses (no pairs behind a length,
// empty keys, invalid UTF-8, duplicate keys; unsorted pairs are accepted,
// as the ESDKs' decoders do); ParseHeader agrees with it; what it accepts
// serializes back to the same bytes when they were sorted (to the sorted
// pairs otherwise) and parses again to the same context; Serialize of any
// context either fails for a stated reason or gives sorted bytes that parse
// back to it.
func FuzzContext(f *testing.F) {
	for _, b := range fcSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseContext(b)
		pairs, wellFormed := fcModel(b)
		var problem string
		seen := map[string]bool{}
		switch {
		case !wellFormed:
			problem = "not the format"
		case len(b) > 0 && len(pairs) == 0:
			problem = "a length but no pairs"
		}
		sorted := true
		for i, p := range pairs {
			switch {
			case problem != "":
			case p[0] == "":
				problem = "empty key"
			case !utf8.ValidString(p[0]) || !utf8.ValidString(p[1]):
				problem = "not UTF-8"
			case seen[p[0]]:
				problem = "duplicate key"
			}
			seen[p[0]] = true
			if i > 0 && pairs[i-1][0] >= p[0] {
				sorted = false
			}
		}
		if (err == nil) != (problem == "") {
			t.Fatalf("parseContext(%x) = %v, %v; the format says %q", b, c, err, problem)
		}

		// The header parser takes the same contexts.
		if len(b) <= math.MaxUint16 {
			h, herr := ParseHeader(bytes.NewReader(fcHeader(b)))
			if (herr == nil) != (err == nil) {
				t.Fatalf("parseContext says %v, ParseHeader %v", err, herr)
			}
			if herr == nil && !reflect.DeepEqual(h.Context, c) {
				t.Fatalf("ParseHeader read the context %v, parseContext %v", h.Context, c)
			}
		}
		if err != nil {
			if c != nil {
				t.Fatalf("parseContext failed (%v) and returned %v", err, c)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseContext: %v is not ErrMalformed", err)
			}
		} else {
			if c == nil || len(c) != len(pairs) {
				t.Fatalf("parseContext(%x) = %v for %d pairs", b, c, len(pairs))
			}
			for _, p := range pairs {
				if c[p[0]] != p[1] {
					t.Fatalf("parseContext(%x)[%q] = %q, want %q", b, p[0], c[p[0]], p[1])
				}
			}
			ser, serr := c.Serialize()
			switch {
			case len(b) > math.MaxUint16:
				if serr == nil || !errors.Is(serr, ErrContext) {
					t.Fatalf("Serialize of a %d-byte context: %v", len(b), serr)
				}
			case serr != nil:
				t.Fatalf("Serialize of a parsed context: %v", serr)
			case len(ser) != len(b):
				t.Fatalf("Serialize gives %d bytes, parsed from %d", len(ser), len(b))
			case sorted && !bytes.Equal(ser, b):
				t.Fatalf("Serialize(parseContext(%x)) = %x", b, ser)
			case !sorted && bytes.Equal(ser, b):
				t.Fatalf("unsorted %x serializes to itself", b)
			}
		}

		// Serialize of a context made from the bytes: split at 0x00 into
		// keys and values.
		fields := strings.Split(string(b), "\x00")
		ec := EncryptionContext{}
		for i := 0; i+1 < len(fields); i += 2 {
			ec[fields[i]] = fields[i+1]
		}
		ser, serr := ec.Serialize()
		want := ""
		size := 2
		for _, k := range ec.sortedKeys() { // a fixed order: coverage must not depend on map order
			v := ec[k]
			size += 4 + len(k) + len(v)
			switch {
			case want != "":
			case k == "":
				want = "empty key"
			case !utf8.ValidString(k) || !utf8.ValidString(v):
				want = "not UTF-8"
			case len(k) > math.MaxUint16 || len(v) > math.MaxUint16:
				want = "too long"
			}
		}
		if want == "" && len(ec) > 0 && size > math.MaxUint16 {
			want = "too long"
		}
		if (serr == nil) != (want == "") {
			t.Fatalf("Serialize(%q) = %v; want %q", ec, serr, want)
		}
		if serr != nil {
			if !errors.Is(serr, ErrContext) {
				t.Fatalf("Serialize: %v is not ErrContext", serr)
			}
			return
		}
		if len(ec) == 0 {
			if ser != nil {
				t.Fatalf("Serialize of an empty context = %x", ser)
			}
			return
		}
		back, err := parseContext(ser)
		if err != nil || !reflect.DeepEqual(back, ec) {
			t.Fatalf("parseContext(Serialize(%q)) = %q, %v", ec, back, err)
		}
		got, ok := fcModel(ser)
		if !ok || !sort.SliceIsSorted(got, func(i, j int) bool { return got[i][0] < got[j][0] }) {
			t.Fatalf("Serialize(%q) = %x is not sorted", ec, ser)
		}
		if again, _ := ec.Serialize(); !bytes.Equal(again, ser) {
			t.Fatalf("Serialize is not deterministic")
		}
	})
}
