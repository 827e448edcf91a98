package armor

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// encode armors b with NewWriter in one Write.
func encode(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// reference is the armored text of b built independently of NewWriter:
// RFC 7468's strict form with LF line ends.
func reference(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	out.WriteString(Begin + "\n")
	for len(s) > 0 {
		n := min(64, len(s))
		out.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	out.WriteString(End + "\n")
	return out.String()
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

var sizes = []int{0, 1, 2, 3, 4, 45, 46, 47, 48, 49, 95, 96, 97, 1000, 4095, 64 << 10, 64<<10 + 1, 200_000}

func TestRoundTrip(t *testing.T) {
	for _, n := range sizes {
		msg := random(t, n)
		text := encode(t, msg)
		if string(text) != reference(msg) {
			t.Fatalf("%d bytes: armor differs from the reference encoding", n)
		}
		if !IsArmored(text) {
			t.Fatalf("%d bytes: IsArmored false on the writer's output", n)
		}
		got, err := io.ReadAll(NewReader(bytes.NewReader(text)))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: decoded %d bytes that differ", n, len(got))
		}
	}
}

// TestStreaming writes in pieces of every small size and reads through
// readers that return one byte or half of what is asked at a time.
func TestStreaming(t *testing.T) {
	msg := random(t, 5000)
	want := reference(msg)
	for step := 1; step <= 100; step += 7 {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for b := msg; len(b) > 0; {
			k := min(step, len(b))
			if n, err := w.Write(b[:k]); n != k || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			b = b[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want {
			t.Fatalf("writes of %d bytes: output differs", step)
		}
	}
	wraps := map[string]func(io.Reader) io.Reader{
		"OneByteReader": iotest.OneByteReader,
		"HalfReader":    iotest.HalfReader,
		"DataErrReader": iotest.DataErrReader,
	}
	for name, wrap := range wraps {
		// Both ends wrapped: the source is slow and the caller reads little.
		got, err := io.ReadAll(wrap(NewReader(wrap(strings.NewReader(want)))))
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	if err := iotest.TestReader(NewReader(strings.NewReader(want)), msg); err != nil {
		t.Error(err)
	}
}

// TestReadDoesNotWait: a Read returns the lines already there instead of
// waiting for the rest of a slow source.
func TestReadDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(reference(bytes.Repeat([]byte("x"), 96))[:len(Begin)+1+65]))
		// Never more: a Read that waited would hang the test.
	}()
	r := NewReader(pr)
	buf := make([]byte, 1000)
	n, err := r.Read(buf)
	if n != 48 || err != nil {
		t.Fatalf("Read = %d, %v, want the 48 bytes of the first line", n, err)
	}
	pw.Close()
}

func TestWhitespaceAndCRLF(t *testing.T) {
	msg := random(t, 100)
	canon := reference(msg)
	ok := map[string]string{
		"leading":         " \t\r\n\n" + canon,
		"trailing":        canon + "\n \t\r\n",
		"CRLF":            strings.ReplaceAll(canon, "\n", "\r\n"),
		"no final LF":     strings.TrimSuffix(canon, "\n"),
		"1024 leading":    strings.Repeat("\n", 1024) + canon,
		"1024 trailing":   canon + strings.Repeat(" ", 1024),
		"mixed LF & CRLF": strings.Replace(canon, "\n", "\r\n", 2),
	}
	for name, text := range ok {
		got, err := io.ReadAll(NewReader(strings.NewReader(text)))
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !IsArmored([]byte(strings.Repeat(" ", 1024) + canon)[:PeekSize]) {
		t.Error("IsArmored false after 1024 spaces in PeekSize bytes")
	}
}

func TestIsArmored(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   bool
	}{
		{Begin, true},
		{Begin + "\nAAAA", true},
		{"\r\n  " + Begin, true},
		{strings.Repeat(" ", 1024) + Begin, true},
		{strings.Repeat(" ", 1025) + Begin, false},
		{Begin[:20], false},
		{"", false},
		{"-----BEGIN AGE ENCRYPTED FILE-----\n", false},
		{"\x02\x05\x78", false},
		{"x" + Begin, false},
	} {
		if got := IsArmored([]byte(tc.prefix)); got != tc.want {
			t.Errorf("IsArmored(%.40q) = %v", tc.prefix, got)
		}
	}
}

// TestMalformed: each defect is refused with an ErrArmor naming it, and no
// decoded byte comes out of a text whose last line is at fault.
func TestMalformed(t *testing.T) {
	msg := random(t, 100) // lines of 64, 64 and 8 columns
	canon := reference(msg)
	lines := strings.SplitAfter(canon, "\n")
	join := func(ls ...string) string { return strings.Join(ls, "") }
	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty", "", "armor: the input is empty"},
		{"only white space", " \n\n", "armor: no " + Begin + " line, only white space"},
		{"wrong header", "-----BEGIN AGE ENCRYPTED FILE-----\n" + join(lines[1:]...), "armor: line 1 is not " + Begin},
		{"header with trailing space", Begin + " \n" + join(lines[1:]...), "armor: line 1 is not " + Begin},
		{"binary", "\x02\x05\x78" + strings.Repeat("\x00", 40000), "armor: line 1 is not " + Begin},
		{"header line number", "\n\n-----BEGIN PGP MESSAGE-----\n", "armor: line 3 is not " + Begin},
		{"too much leading space", strings.Repeat(" ", 1025) + canon, "armor: more than 1024 bytes of white space before the " + Begin + " line"},
		{"long line", join(lines[0], strings.TrimSuffix(lines[1], "\n")+"AAAAAAAAAAAAAAAA\n", lines[2], lines[3], lines[4]), "armor: line 2 is 80 columns, want 64"},
		{"no newlines", Begin + "\n" + strings.Repeat("A", 1<<20), "armor: line 2 is more than 16384 columns, want 64"},
		{"short middle line", join(lines[0], lines[1][:60]+"\n", lines[2], lines[3], lines[4]), "armor: line 2 is 60 columns but not the last, want 64"},
		{"padded middle line", join(lines[0], reference(msg[:47])[len(Begin)+1:][:65], lines[2], lines[3], lines[4]), "armor: line 2 ends in padding but is not the last"},
		{"empty line", join(lines[0], lines[1], "\n", lines[2], lines[3], lines[4]), "armor: line 3 is empty"},
		{"empty line before END", join(lines[0], "\n", lines[4]), "armor: line 2 is empty"},
		{"not a multiple of 4", join(lines[0], lines[1], lines[2], "QUJ\n", lines[4]), "armor: line 4 is 3 columns, not a multiple of 4"},
		{"bad character", join(lines[0], "A*"+lines[1][2:], lines[2], lines[3], lines[4]), "armor: line 2 column 2 is not base64"},
		{"padding inside", join(lines[0], lines[1], lines[2], "QQ==QUJD\n", lines[4]), "armor: line 4 column 5 is not base64"},
		{"bad padding bits", join(lines[0], lines[1], lines[2], "QR==\n", lines[4]), "armor: line 4 ends in nonzero padding bits (not canonical base64)"},
		{"unpadded last line", join(lines[0], lines[1], lines[2], strings.TrimRight(lines[3], "=\n")+"\n", lines[4]), "armor: line 4 is 6 columns, not a multiple of 4"},
		{"carriage return inside", join(lines[0], lines[1][:10]+"\r"+lines[1][10:], lines[2], lines[3], lines[4]), "armor: line 2 has a carriage return inside it"},
		{"wrong END", join(lines[0], lines[1], lines[2], lines[3], "-----END AGE ENCRYPTED FILE-----\n"), "armor: line 5 is not " + End},
		{"END after full line wrong", join(lines[0], lines[1], "-----END-----\n"), "armor: line 3 is not " + End},
		{"missing END", join(lines[0], lines[1], lines[2], lines[3]), "armor: truncated after line 4, no " + End + " line"},
		{"truncated after full line", join(lines[0], lines[1]), "armor: truncated after line 2, no " + End + " line"},
		{"truncated after BEGIN", lines[0], "armor: truncated after line 1, no " + End + " line"},
		{"truncated BEGIN", Begin, "armor: truncated after line 1, no " + End + " line"},
		{"truncated mid-line", canon[:len(lines[0])+30], "armor: truncated in line 2, no " + End + " line"},
		{"truncated at a quantum", canon[:len(lines[0])+32], "armor: truncated in line 2, no " + End + " line"},
		{"trailing garbage", canon + "\n\nx", "armor: line 8: text after the " + End + " line"},
		{"second message", canon + canon, "armor: line 6: text after the " + End + " line"},
		{"too much trailing space", canon + strings.Repeat("\n", 1025), "armor: more than 1024 bytes of white space after the " + End + " line"},
	} {
		got, err := io.ReadAll(NewReader(strings.NewReader(tc.text)))
		if !errors.Is(err, ErrArmor) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") || len(err.Error()) > 200 {
			t.Errorf("%s: error not one short line: %q", tc.name, err)
		}
		if len(got) >= len(msg) {
			t.Errorf("%s: all %d bytes decoded before the error", tc.name, len(got))
		}
	}
}

// TestErrorSticky: after an error, every Read returns it again.
func TestErrorSticky(t *testing.T) {
	r := NewReader(strings.NewReader("garbage\n"))
	_, err1 := r.Read(make([]byte, 10))
	_, err2 := r.Read(make([]byte, 10))
	if err1 == nil || err1 != err2 {
		t.Fatalf("errors %v then %v", err1, err2)
	}
}

// TestSourceError: an error reading the source comes through unchanged,
// not as an armor error.
func TestSourceError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := NewReader(io.MultiReader(strings.NewReader(Begin+"\nAAAA"), iotest.ErrReader(boom)))
	_, err := io.ReadAll(r)
	if !errors.Is(err, boom) || errors.Is(err, ErrArmor) {
		t.Fatalf("got %v", err)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("no space left")
	}
	f.n--
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter(&failWriter{n: 0})
	if _, err := w.Write(make([]byte, 100)); err == nil {
		t.Fatal("Write to a failing destination: no error")
	}
	if _, err := w.Write(make([]byte, 1)); err == nil {
		t.Fatal("Write after an error: no error")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after an error: no error")
	}
	w = NewWriter(io.Discard)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close: no error")
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close: no error")
	}
	// Less than a line is written to nothing before Close, which fails.
	w = NewWriter(&failWriter{n: 0})
	if _, err := w.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close with a failing destination: no error")
	}
}

// canonical is text as NewWriter would have written it, given that
// NewReader accepted it: white space around the armor dropped, CRLF as LF.
func canonical(text []byte) []byte {
	text = bytes.Trim(text, whitespace)
	text = bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n"))
	return append(text, '\n')
}

func FuzzReader(f *testing.F) {
	for _, n := range []int{0, 1, 47, 48, 100} {
		f.Add(encode(f, bytes.Repeat([]byte{byte(n)}, n)))
	}
	f.Add([]byte(Begin + "\r\nQQ==\r\n" + End + "\r\n"))
	f.Add([]byte("  \n" + Begin + "\nQR==\n" + End))
	f.Fuzz(func(t *testing.T, text []byte) {
		got, err := io.ReadAll(NewReader(bytes.NewReader(text)))
		if err != nil {
			if !errors.Is(err, ErrArmor) {
				t.Fatalf("error not ErrArmor: %v", err)
			}
			return
		}
		// One armored text a message: the accepted input is the
		// canonical encoding of what it decoded to, up to white space
		// and line ends.
		if again := encode(t, got); !bytes.Equal(again, canonical(text)) {
			t.Fatalf("accepted a non-canonical armor:\n%q\nre-encoded as\n%q", text, again)
		}
		if !IsArmored(text) {
			t.Fatalf("decoded but IsArmored is false: %q", text)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	msg := random(b, 1<<20)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		w := NewWriter(io.Discard)
		for p := msg; len(p) > 0; p = p[32<<10:] {
			w.Write(p[:32<<10])
		}
		w.Close()
	}
}

func BenchmarkDecode(b *testing.B) {
	msg := random(b, 1<<20)
	text := encode(b, msg)
	b.SetBytes(int64(len(msg)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		r := NewReader(bytes.NewReader(text))
		for {
			if _, err := r.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
