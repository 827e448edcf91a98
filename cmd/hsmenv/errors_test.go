package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// errCase is a command that must fail with one line a user can act on.
type errCase struct {
	name  string
	stdin []byte   // what standard input holds (a pipe); nil: nothing
	env   []string // added to cleanEnv()
	args  []string // "OUT" is replaced by a path in a fresh directory
	want  []string // the message holds each
}

// forbidden matches what an error must not show: internal package and Go
// API names, temporary file names, cancellation plumbing, byte values and
// offsets, the ESDK's policy constants, and bad plurals.
var forbidden = regexp.MustCompile(`envelope:|\.tmp-|\(unnamed\)|context canceled|deadline exceeded|first byte|0x[0-9a-fA-F]|\bat \d|of \d+ bytes|where the message size|\b1 (EDKs|pairs|keys)\b|REQUIRE_|\*[a-z0-9]+\.[A-Z]`)

// checkErrCase runs c and checks its exit status (1), its message (one
// line on standard error, at most 200 characters, each wanted word, nothing
// forbidden) and that it left nothing where it was to write.
func checkErrCase(t *testing.T, c errCase) {
	t.Helper()
	outDir := t.TempDir()
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = strings.ReplaceAll(a, "OUT", filepath.Join(outDir, "out"))
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv(c.env...)
	cmd.Stdin = bytes.NewReader(c.stdin)
	checkErrResult(t, c, output(t, cmd), outDir)
}

func checkErrResult(t *testing.T, c errCase, r result, outDir string) {
	t.Helper()
	msg := string(r.stderr)
	line := strings.TrimSuffix(msg, "\n")
	switch {
	case r.code != 1:
		t.Errorf("%s: exit %d, want 1; stderr %q", c.name, r.code, msg)
	case strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "hsmenv: "):
		t.Errorf("%s: want one line starting hsmenv:, got %q", c.name, msg)
	case len(line) > 200:
		t.Errorf("%s: %d characters, at most 200: %q", c.name, len(line), line)
	case forbidden.MatchString(line):
		t.Errorf("%s: shows %q: %q", c.name, forbidden.FindString(line), line)
	}
	for _, w := range c.want {
		if !strings.Contains(line, w) {
			t.Errorf("%s: %q does not say %q", c.name, line, w)
		}
	}
	if left, _ := os.ReadDir(outDir); len(left) > 0 {
		t.Errorf("%s: left %s behind", c.name, left[0].Name())
	}
}

// TestErrorMessages drives the binary over inputs that are not messages,
// truncated, altered or extended messages, wrong keys and contexts, a
// legacy message, a bad config file, key files of text and a failing
// write, through a file, a pipe and --range, and inspect on them.
func TestErrorMessages(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	wrong := rawAESKey(t, dir, "k") // same name, other bytes
	other := rawAESKey(t, dir, "other")
	pt := make([]byte, 100_000)
	rand.Read(pt)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, pt, 0o600)
	encrypt := func(name string, args ...string) []byte {
		path := filepath.Join(dir, name)
		ok(t, run(t, nil, cleanEnv(), append(append([]string{"encrypt", "--key", key, "--frame-size", "4KiB", "-o", path}, args...), plain)...))
		b, _ := os.ReadFile(path)
		return b
	}
	msg := encrypt("msg.enc", "--context", "a=b")
	signed := encrypt("signed.enc", "--suite", "0578")
	encrypt("unstored.enc", "--context", "a=b", "--context", "secret=s", "--required-context-key", "secret")
	var hdr struct {
		HeaderSize int `json:"header_size"`
	}
	json.Unmarshal(ok(t, run(t, nil, cleanEnv(), "inspect", "--json", filepath.Join(dir, "msg.enc"))).stdout, &hdr)
	hs := hdr.HeaderSize
	if r := ok(t, run(t, nil, cleanEnv(), "inspect", filepath.Join(dir, "msg.enc"))); !bytes.Contains(r.stdout, []byte("context:     1 pair\n")) {
		t.Errorf("inspect of a message with one pair: %s", r.stdout)
	}
	finalFrame := 40 + len(pt)%4096

	file := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		os.WriteFile(path, b, 0o600)
		return path
	}
	random := func(n int, prefix ...byte) []byte {
		b := make([]byte, n)
		rand.Read(b)
		copy(b, prefix)
		return b
	}
	notMsg := []string{"not an encrypted message"}
	truncated := []string{"message truncated"}
	var cases []errCase
	// decryptEach adds decrypting b from a file, from a pipe and (unless
	// noRange) with --range.
	decryptEach := func(name string, b []byte, noRange bool, want ...string) {
		path := file(name, b)
		cases = append(cases,
			errCase{name: name + " (file)", args: []string{"decrypt", "--key", key, "-o", "OUT", path}, want: want},
			errCase{name: name + " (pipe)", stdin: b, args: []string{"decrypt", "--key", key, "-o", "OUT", "-"}, want: want})
		if !noRange {
			cases = append(cases, errCase{name: name + " (--range)", args: []string{"decrypt", "--key", key, "--range", "0:10", "-o", "OUT", path}, want: want})
		}
	}

	// Not messages, and inspect on them.
	for name, b := range map[string][]byte{
		"text":                  []byte("hello, this is not a message\n"),
		"pdf":                   append([]byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), random(3000)...),
		"zeros":                 make([]byte, 4096),
		"random 1 byte":         random(1, 0x9c),
		"random 3 bytes":        random(3, 0xfd),
		"random 100 bytes":      random(100, 0x25),
		"random 100000 bytes":   random(100_000, 0xd5),
		"random after 0x02":     random(1000, 0x02, 0x14, 0x98), // "algorithm suite 1498"
		"random after 0x01":     random(1000, 0x01, 0x52),
		"version byte flipped":  flip(msg, 0),
		"suite byte flipped":    flip(msg, 2),
		"zeros after 0x02 0x04": append([]byte{2, 4}, make([]byte, 500)...),
	} {
		decryptEach(name, b, false, notMsg...)
		cases = append(cases, errCase{name: "inspect " + name, args: []string{"inspect", file(name, b)}, want: notMsg})
	}
	decryptEach("empty", nil, false, "not an encrypted message", "empty")
	cases = append(cases, errCase{name: "inspect empty", args: []string{"inspect", file("empty", nil)}, want: []string{"not an encrypted message", "empty"}})

	// Truncated: in the header, the body, the final frame, the footer.
	for _, n := range []int{1, 3, 40, 100, hs - 1, hs, hs + 100, hs + 4096, len(msg) / 2, len(msg) - finalFrame, len(msg) - finalFrame + 30, len(msg) - 10, len(msg) - 1} {
		decryptEach("msg cut at "+strconv.Itoa(n), msg[:n], false, truncated...)
	}
	for _, n := range []int{len(signed) / 2, len(signed) - 104, len(signed) - 50, len(signed) - 1} {
		decryptEach("signed cut at "+strconv.Itoa(n), signed[:n], true, truncated...)
	}
	for _, n := range []int{3, 100, hs - 1} {
		cases = append(cases, errCase{name: "inspect msg cut at " + strconv.Itoa(n), args: []string{"inspect", file("cut", msg[:n])}, want: truncated})
	}

	// Altered and extended.
	decryptEach("EDK flipped", flip(msg, hs-60), false, "no key could unwrap", "wrong key, or the EDK or context was altered")
	decryptEach("frame flipped", flip(msg, hs+2000), false, "frame 1 was altered")
	decryptEach("final tag flipped", flip(msg, len(msg)-3), false, "was altered")
	decryptEach("frame IV flipped", flip(msg, hs+6), false, "frame 1 was altered")
	decryptEach("byte appended", append(bytes.Clone(msg), 0), false, "bytes follow the end of the message")
	decryptEach("frames appended", append(bytes.Clone(msg), random(5000)...), false, "malformed message")
	decryptEach("v2 suite in a v1 header", append([]byte{1, 0x80, 4, 0x78}, random(500)...), false, "malformed message")

	// Keys and contexts.
	msgFile := filepath.Join(dir, "msg.enc")
	unstoredFile := filepath.Join(dir, "unstored.enc")
	cases = append(cases,
		errCase{name: "wrong key", args: []string{"decrypt", "--key", wrong, "-o", "OUT", msgFile}, want: []string{"no key could unwrap", "wrong key, or"}},
		errCase{name: "key not in the message", args: []string{"decrypt", "--key", other, "-o", "OUT", msgFile}, want: []string{"no EDK of this message names it (it has 1 EDK)"}},
		errCase{name: "two keys, one wrong", args: []string{"decrypt", "--key", other, "--key", wrong, "-o", "OUT", msgFile}, want: []string{"wrong key, or", "no EDK names the other key"}},
		errCase{name: "wrong context", args: []string{"decrypt", "--key", key, "--context", "a=c", "-o", "OUT", msgFile}, want: []string{`key "a" is "b" in the message, "c" given`}},
		errCase{name: "required context missing", args: []string{"decrypt", "--key", key, "--require-context", "x=y", "-o", "OUT", msgFile}, want: []string{`required key "x" is not in the message`}},
		errCase{name: "unstored context missing", args: []string{"decrypt", "--key", key, "-o", "OUT", unstoredFile}, want: []string{"no key could unwrap"}},
		errCase{name: "unstored context wrong", args: []string{"decrypt", "--key", key, "--context", "secret=x", "-o", "OUT", unstoredFile}, want: []string{"or a wrong value for secret, not stored in the message"}},
		errCase{name: "legacy message", args: []string{"decrypt", "--key", key, "-o", "OUT", file("v1.enc", v1Header())}, want: []string{"legacy message", "--allow-legacy"}},
	)

	// A config file line that is not a key URI.
	cfg := filepath.Join(dir, "config")
	os.MkdirAll(filepath.Join(cfg, "hsmenv"), 0o700)
	os.WriteFile(filepath.Join(cfg, "hsmenv", "keys"), []byte("# keys\n"+key+"\nnot a uri\n"), 0o600)
	cases = append(cases, errCase{name: "config file", env: []string{"XDG_CONFIG_HOME=" + cfg, "HSMENV_KEY="}, args: []string{"decrypt", "-o", "OUT", msgFile},
		want: []string{filepath.Join(cfg, "hsmenv", "keys") + ", line 3: key not a uri: bad key URI: no scheme"}})
	os.MkdirAll(filepath.Join(dir, "config2", "hsmenv"), 0o700)
	os.WriteFile(filepath.Join(dir, "config2", "hsmenv", "keys"), []byte("\nnope:x=1\n"), 0o600)
	cases = append(cases, errCase{name: "config file scheme", env: []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "config2"), "HSMENV_KEY="}, args: []string{"decrypt", "-o", "OUT", msgFile},
		want: []string{"keys, line 2: unknown key URI scheme"}})

	// raw-aes key files of text.
	// In a directory of a short name, as a user's would be: the message
	// holds the URI, and so the path.
	keyDir, err := os.MkdirTemp("", "k")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(keyDir)
	k16, k32 := random(16), random(32)
	for i, c := range []struct {
		content     []byte
		query, want string
	}{
		{[]byte(hex.EncodeToString(k16)), "", "the key file is text (32 hex digits): decode it (xxd -r -p) or add key-encoding=hex"},
		{[]byte(hex.EncodeToString(k32) + "\n"), "", "64 hex digits"},
		{[]byte(base64.StdEncoding.EncodeToString(k16)), "", "the key file is text (24 base64 characters): decode it (base64 -d) or add key-encoding=base64"},
		{[]byte(base64.StdEncoding.EncodeToString(k32) + "\n"), "", "44 base64 characters"},
		{[]byte("zz" + hex.EncodeToString(k16)[2:]), "&key-encoding=hex", "key-encoding=hex, but the key file is not hex text"},
		{k16, "&key-encoding=b64", "key-encoding=b64: use raw (the default), hex or base64"},
	} {
		path := filepath.Join(keyDir, strconv.Itoa(i))
		os.WriteFile(path, c.content, 0o600)
		uri := "raw-aes:namespace=cli;name=k?key-file=" + path + c.query
		cases = append(cases, errCase{name: "key file " + c.want, args: []string{"encrypt", "--key", uri, "-o", "OUT", plain}, want: []string{c.want}})
	}

	for _, c := range cases {
		checkErrCase(t, c)
	}

	// A write that fails (the file size limit): the output's own name,
	// not its temporary file's.
	for _, c := range []errCase{
		{name: "encrypt, write fails", args: []string{"encrypt", "--key", key, "-o", "OUT", plain}, want: []string{"file too large"}},
		{name: "decrypt, write fails", args: []string{"decrypt", "--key", key, "-o", "OUT", msgFile}, want: []string{"file too large"}},
	} {
		outDir := t.TempDir()
		out := filepath.Join(outDir, "out")
		for i, a := range c.args {
			c.args[i] = strings.ReplaceAll(a, "OUT", out)
		}
		cmd := exec.Command("sh", append([]string{"-c", `ulimit -f 20 && exec "$0" "$@"`, bin}, c.args...)...)
		cmd.Env = cleanEnv()
		c.want = append(c.want, "writing "+out+": ")
		checkErrResult(t, c, output(t, cmd), outDir)
	}
}

// v1Header returns the start of a legacy (v1, suite 0078) message: a
// header that parses, whose key and body do not matter because the
// commitment policy refuses it first.
func v1Header() []byte {
	b := []byte{1, 0x80, 0x00, 0x78}
	b = append(b, make([]byte, 16)...) // message id
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, 1) // one EDK
	for _, f := range []string{"cli", "k", "ciphertext"} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	b = append(b, 2, 0, 0, 0, 0, 12)           // framed, reserved, IV length
	b = binary.BigEndian.AppendUint32(b, 4096) // frame length
	b = append(b, make([]byte, 12+16)...)      // header IV and tag
	return append(b, make([]byte, 100)...)
}
