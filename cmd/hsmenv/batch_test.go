//go:build linux

package main_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/internal/ostest"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// tree writes files (relative path -> content) and empty directories under
// dir.
func tree(t *testing.T, dir string, files map[string][]byte, emptyDirs ...string) {
	t.Helper()
	for rel, b := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range emptyDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// listTree returns every path under dir (directories with a trailing /).
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		paths = append(paths, rel)
		return nil
	})
	sort.Strings(paths)
	return paths
}

// metadata is a --metadata-output line with the header fields that
// inspect --json also has.
type metadata struct {
	Mode           string `json:"mode"`
	Input          string `json:"input"`
	Output         string `json:"output"`
	PlaintextSize  *int64 `json:"plaintext_size"`
	CiphertextSize int64  `json:"ciphertext_size"`
}

// readMetadata parses a JSON Lines file into the common fields and, per
// line, the header part (every other field) as raw JSON objects.
func readMetadata(t *testing.T, b []byte) ([]metadata, []map[string]json.RawMessage) {
	t.Helper()
	var recs []metadata
	var headers []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m metadata
		var h map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metadata line %q: %v", sc.Text(), err)
		}
		json.Unmarshal(sc.Bytes(), &h)
		for _, k := range []string{"mode", "input", "output", "plaintext_size", "ciphertext_size"} {
			delete(h, k)
		}
		recs = append(recs, m)
		headers = append(headers, h)
	}
	return recs, headers
}

// sameHeader checks a metadata line's header part against inspect --json
// of the message file: the same fields with the same values.
func sameHeader(t *testing.T, h map[string]json.RawMessage, message string) {
	t.Helper()
	var want map[string]json.RawMessage
	if err := json.Unmarshal(ok(t, run(t, nil, nil, "inspect", "--json", message)).stdout, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) < 9 || len(h) != len(want) {
		t.Fatalf("%s: metadata header fields %v, inspect --json %v", message, keys(h), keys(want))
	}
	for k, v := range want {
		var a, b any
		json.Unmarshal(v, &a)
		json.Unmarshal(h[k], &b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%s: metadata %s = %s, inspect --json says %s", message, k, h[k], v)
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// A tree with nested and empty directories and empty files goes through
// encrypt -r and decrypt -r unchanged; each metadata line describes its
// file as inspect --json does, with the sizes on disk.
func TestBatchTreeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	big := make([]byte, 700_001)
	rand.Read(big)
	files := map[string][]byte{
		"top.txt":           []byte("top\n"),
		"empty":             nil,
		"a/b/c/deep.bin":    big,
		"a/b/also-empty":    {},
		"a/x.enc":           []byte("a plaintext named .enc"),
		"spaces in name/ok": []byte("ok"),
	}
	src, enc, back := filepath.Join(dir, "src"), filepath.Join(dir, "enc"), filepath.Join(dir, "back")
	tree(t, src, files, "a/nothing-here", "empty-dir")
	meta := filepath.Join(dir, "enc.jsonl")
	ok(t, run(t, nil, nil, "encrypt", "--key", key, "--context", "purpose=batch", "--frame-size", "64KiB", "-r", src, "-o", enc, "--metadata-output", meta))

	var want []string
	for _, p := range listTree(t, src) {
		if strings.HasSuffix(p, "/") {
			want = append(want, p)
		} else {
			want = append(want, p+".enc")
		}
	}
	sort.Strings(want)
	if got := listTree(t, enc); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("encrypted tree:\n%v\nwant\n%v", got, want)
	}
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	recs, headers := readMetadata(t, b)
	if len(recs) != len(files) {
		t.Fatalf("%d metadata lines for %d files:\n%s", len(recs), len(files), b)
	}
	for i, r := range recs {
		rel, _ := filepath.Rel(src, r.Input)
		if r.Mode != "encrypt" || r.Output != filepath.Join(enc, rel)+".enc" || r.PlaintextSize == nil || *r.PlaintextSize != int64(len(files[rel])) {
			t.Fatalf("metadata line %d: %+v", i, r)
		}
		if st, err := os.Stat(r.Output); err != nil || st.Size() != r.CiphertextSize {
			t.Fatalf("%s: ciphertext_size %d, file %v %v", r.Output, r.CiphertextSize, st, err)
		}
		sameHeader(t, headers[i], r.Output)
	}

	dmeta := filepath.Join(dir, "dec.jsonl")
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "--require-context", "purpose=batch", "-r", enc, "-o", back, "--metadata-output", dmeta))
	if got, want := listTree(t, back), listTree(t, src); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("decrypted tree:\n%v\nwant\n%v", got, want)
	}
	for rel, pt := range files {
		if got, _ := os.ReadFile(filepath.Join(back, rel)); !bytes.Equal(got, pt) {
			t.Fatalf("%s differs after the round trip", rel)
		}
	}
	b, _ = os.ReadFile(dmeta)
	recs, headers = readMetadata(t, b)
	if len(recs) != len(files) {
		t.Fatalf("%d decrypt metadata lines for %d files", len(recs), len(files))
	}
	for i, r := range recs {
		st, _ := os.Stat(r.Input)
		rel, _ := filepath.Rel(back, r.Output)
		if r.Mode != "decrypt" || r.PlaintextSize == nil || *r.PlaintextSize != int64(len(files[rel])) || r.CiphertextSize != st.Size() {
			t.Fatalf("decrypt metadata line %d: %+v", i, r)
		}
		sameHeader(t, headers[i], r.Input)
	}

	// The list form: -o DIR FILE... and back.
	list := filepath.Join(dir, "list")
	os.Mkdir(list, 0o700)
	ok(t, run(t, nil, nil, "encrypt", "--key", key, "-o", list, filepath.Join(src, "top.txt"), filepath.Join(src, "a/b/c/deep.bin")))
	plain := filepath.Join(dir, "plain")
	os.Mkdir(plain, 0o700)
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", plain, filepath.Join(list, "top.txt.enc"), filepath.Join(list, "deep.bin.enc")))
	if got := listTree(t, plain); strings.Join(got, " ") != "./ deep.bin top.txt" {
		t.Fatalf("decrypt -o DIR: %v", got)
	}
}

// One damaged message among many: its name and the reason on one line,
// the others decrypted, exit 1 with a count, nothing else in the output
// directory. An existing output is refused for that file only; a name
// without .enc is refused.
func TestBatchFailuresNamed(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	src, enc, out := filepath.Join(dir, "src"), filepath.Join(dir, "enc"), filepath.Join(dir, "out")
	files := map[string][]byte{}
	for i := range 10 {
		b := make([]byte, 1000*i+100_000)
		rand.Read(b)
		files[fmt.Sprintf("f%d", i)] = b
	}
	tree(t, src, files)
	ok(t, run(t, nil, nil, "encrypt", "--key", key, "--frame-size", "4KiB", "-r", src, "-o", enc))
	bad := filepath.Join(enc, "f3.enc")
	m, _ := os.ReadFile(bad)
	os.WriteFile(bad, flip(m, len(m)-5000), 0o600)
	os.Mkdir(out, 0o700)
	var args []string
	for i := range 10 {
		args = append(args, filepath.Join(enc, fmt.Sprintf("f%d.enc", i)))
	}
	meta := filepath.Join(dir, "meta.jsonl")
	r := run(t, nil, nil, append([]string{"decrypt", "--key", key, "-o", out, "--metadata-output", meta}, args...)...)
	lines := strings.Split(strings.TrimSpace(string(r.stderr)), "\n")
	if r.code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "hsmenv: "+bad+": ") || len(lines[0]) < len("hsmenv: "+bad+": ")+10 ||
		lines[1] != "hsmenv: 1 of 10 files failed" {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	var want []string
	for i := range 10 {
		if i != 3 {
			want = append(want, fmt.Sprintf("f%d", i))
		}
	}
	if got := listTree(t, out); strings.Join(got[1:], " ") != strings.Join(want, " ") {
		t.Fatalf("output directory holds %v, want %v", got, want)
	}
	for _, name := range want {
		if got, _ := os.ReadFile(filepath.Join(out, name)); !bytes.Equal(got, files[name]) {
			t.Fatalf("%s differs", name)
		}
	}
	b, _ := os.ReadFile(meta)
	if recs, _ := readMetadata(t, b); len(recs) != 9 || strings.Contains(string(b), "f3.enc") {
		t.Fatalf("metadata for the 9 files written, not the failed one:\n%s", b)
	}

	// Existing outputs: refused per file without --force, replaced with it.
	os.WriteFile(filepath.Join(out, "f3"), []byte("keep"), 0o600)
	r = run(t, nil, nil, "decrypt", "--key", key, "-o", out, args[2], args[3])
	lines = strings.Split(strings.TrimSpace(string(r.stderr)), "\n")
	if r.code != 1 || len(lines) != 3 || !strings.Contains(lines[0]+lines[1], "output file exists") || lines[2] != "hsmenv: 2 of 2 files failed" {
		t.Fatalf("existing outputs: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "f3")); string(b) != "keep" {
		t.Fatalf("a refused output was changed: %q", b)
	}
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", out, "--force", args[2], args[4]))
	// A name without .enc, next to one that works.
	noSuffix := filepath.Join(dir, "message")
	os.WriteFile(noSuffix, m, 0o600)
	r = run(t, nil, nil, "decrypt", "--key", key, "-o", t.TempDir(), noSuffix, args[0])
	if r.code != 1 || !strings.Contains(string(r.stderr), "hsmenv: "+noSuffix+": the name does not end in .enc") {
		t.Fatalf("no .enc: exit %d, stderr %s", r.code, r.stderr)
	}
	// It alone, to a file, is today's contract.
	ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", filepath.Join(dir, "message.out"), noSuffix))

	// Several inputs need a directory.
	fails(t, run(t, nil, nil, "encrypt", "--key", key, "-o", filepath.Join(dir, "nodir"), args[0], args[1]), "need -o DIR")
	fails(t, run(t, nil, nil, "encrypt", "--key", key, args[0], args[1]), "need -o DIR")
}

// With SoftHSM2: a tree through the token's AES key, its files on several
// workers at once; the keys are opened once per run, so a wrong PIN is one
// error, not one per file.
func TestBatchPKCS11(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	env := tok.Env()
	aes := tok.URI("aes-kek")
	ok(t, run(t, nil, env, "keygen", "--type", "aes-256", "--key", aes))
	dir := t.TempDir()
	src, enc, back := filepath.Join(dir, "src"), filepath.Join(dir, "enc"), filepath.Join(dir, "back")
	files := map[string][]byte{}
	for i := range 24 {
		files[fmt.Sprintf("d%d/f%d", i%3, i)] = []byte(strings.Repeat("x", i*100))
	}
	tree(t, src, files)
	ok(t, run(t, nil, env, "encrypt", "--key", aes, "-r", src, "-o", enc))
	ok(t, run(t, nil, env, "decrypt", "--key", aes, "-r", enc, "-o", back))
	for rel, pt := range files {
		if got, _ := os.ReadFile(filepath.Join(back, rel)); !bytes.Equal(got, pt) {
			t.Fatalf("%s differs", rel)
		}
	}
	wrong := filepath.Join(dir, "wrong-pin")
	os.WriteFile(wrong, []byte("not-the-pin\n"), 0o600)
	badKey := strings.Replace(aes, "pin-source=file:"+tok.PINFile, "pin-source=file:"+wrong, 1)
	fails(t, run(t, nil, env, "decrypt", "--key", badKey, "-r", enc, "-o", filepath.Join(dir, "nothing")), "PIN")
	if _, err := os.Stat(filepath.Join(dir, "nothing")); err == nil {
		t.Fatal("a run whose key did not open created its output directory")
	}
}

// runOnTerminal runs hsmenv with standard output on a pseudo-terminal and
// returns what the terminal showed (newlines as the terminal sends them
// back, \r\n), what went to standard error and the exit status.
func runOnTerminal(t *testing.T, stdin []byte, args ...string) (shown string, r result) {
	t.Helper()
	master, slave := ostest.PTY(t)
	got := make(chan []byte)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				got <- b.Bytes()
				return
			}
		}
	}()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = slave
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	slave.Close()
	r = result{stderr: errb.Bytes()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(<-got), r
}

// Binary output is refused on a terminal unless -o - asks for it; text
// plaintext is shown; a pipe gets everything (the other tests).
func TestTerminalRefusal(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	text := []byte("a text secret\nsecond line\n")
	binary := []byte("starts as text, then \x1b]0;escape\x07 and \x00 bytes")
	textEnc, binEnc := filepath.Join(dir, "text.enc"), filepath.Join(dir, "bin.enc")
	ok(t, run(t, text, nil, "encrypt", "--key", key, "-o", textEnc, "-"))
	ok(t, run(t, binary, nil, "encrypt", "--key", key, "-o", binEnc, "-"))

	const refusal = "hsmenv: refusing to write binary output to a terminal: use -o FILE, or -o - to force\n"
	shown, r := runOnTerminal(t, text, "encrypt", "--key", key, "-")
	if r.code != 2 || string(r.stderr) != refusal || shown != "" {
		t.Fatalf("encrypt to a terminal: exit %d, stderr %q, shown %q", r.code, r.stderr, shown)
	}
	shown, r = runOnTerminal(t, nil, "decrypt", "--key", key, binEnc)
	if r.code != 2 || string(r.stderr) != refusal || strings.Contains(shown, "\x1b") {
		t.Fatalf("binary plaintext to a terminal: exit %d, stderr %q, shown %q", r.code, r.stderr, shown)
	}
	shown, r = runOnTerminal(t, nil, "decrypt", "--key", key, textEnc)
	if r.code != 0 || strings.ReplaceAll(shown, "\r\n", "\n") != string(text) {
		t.Fatalf("text plaintext to a terminal: exit %d, stderr %q, shown %q", r.code, r.stderr, shown)
	}
	// Asked for with -o -.
	shown, r = runOnTerminal(t, nil, "decrypt", "--key", key, "-o", "-", binEnc)
	if r.code != 0 || !strings.Contains(shown, "\x1b]0;escape") {
		t.Fatalf("-o -: exit %d, stderr %q, shown %q", r.code, r.stderr, shown)
	}
	if _, r = runOnTerminal(t, text, "encrypt", "--key", key, "-o", "-", "-"); r.code != 0 {
		t.Fatalf("encrypt -o -: exit %d, stderr %q", r.code, r.stderr)
	}
	// inspect's text is fine on a terminal.
	if shown, r = runOnTerminal(t, nil, "inspect", textEnc); r.code != 0 || !strings.Contains(shown, "message id:") {
		t.Fatalf("inspect: exit %d, stderr %q, shown %q", r.code, r.stderr, shown)
	}
}

// --metadata-output on a single file, on rewrap, and its refusals: -o and
// it both on standard output, an existing file without --force; a failed
// run leaves no metadata file.
func TestMetadataOutput(t *testing.T) {
	dir := t.TempDir()
	key, to := rawAESKey(t, dir, "k"), rawAESKey(t, dir, "new")
	pt := make([]byte, 5000)
	rand.Read(pt)
	in, enc := filepath.Join(dir, "in"), filepath.Join(dir, "in.enc")
	os.WriteFile(in, pt, 0o600)

	r := ok(t, run(t, nil, nil, "encrypt", "--key", key, "--context", "a=b", "-o", enc, "--metadata-output", "-", in))
	recs, headers := readMetadata(t, r.stdout)
	if len(recs) != 1 || recs[0].Input != in || recs[0].Output != enc || *recs[0].PlaintextSize != 5000 {
		t.Fatalf("metadata on standard output: %s", r.stdout)
	}
	sameHeader(t, headers[0], enc)
	// From standard input to standard output, the metadata to a file.
	meta := filepath.Join(dir, "stdin.jsonl")
	r = ok(t, run(t, pt, nil, "encrypt", "--key", key, "--metadata-output", meta, "-"))
	b, _ := os.ReadFile(meta)
	if recs, _ := readMetadata(t, b); len(recs) != 1 || recs[0].Input != "-" || recs[0].Output != "-" || recs[0].CiphertextSize != int64(len(r.stdout)) || *recs[0].PlaintextSize != 5000 {
		t.Fatalf("stdin metadata: %s", b)
	}
	r = ok(t, run(t, r.stdout, nil, "decrypt", "--key", key, "--metadata-output", filepath.Join(dir, "pipe.jsonl"), "-"))
	b, _ = os.ReadFile(filepath.Join(dir, "pipe.jsonl"))
	if recs, _ := readMetadata(t, b); len(recs) != 1 || *recs[0].PlaintextSize != 5000 || !bytes.Equal(r.stdout, pt) {
		t.Fatalf("decrypt from a pipe: %s", b)
	}

	rot := filepath.Join(dir, "rot.enc")
	rmeta := filepath.Join(dir, "rewrap.jsonl")
	ok(t, run(t, nil, nil, "rewrap", "--key", key, "--to", to, "-o", rot, "--metadata-output", rmeta, enc))
	b, _ = os.ReadFile(rmeta)
	recs, headers = readMetadata(t, b)
	if st, _ := os.Stat(rot); len(recs) != 1 || recs[0].Mode != "rewrap" || recs[0].PlaintextSize != nil || recs[0].CiphertextSize != st.Size() {
		t.Fatalf("rewrap metadata: %s", b)
	}
	sameHeader(t, headers[0], rot)

	fails(t, run(t, nil, nil, "decrypt", "--key", key, "--metadata-output", "-", enc), "both write to standard output")
	fails(t, run(t, nil, nil, "encrypt", "--key", key, "-o", "-", "--metadata-output", "/dev/stdout", in), "both write to standard output")
	fails(t, run(t, nil, nil, "encrypt", "--key", key, "-o", filepath.Join(dir, "x.enc"), "--metadata-output", rmeta, in), "exists")
	ok(t, run(t, nil, nil, "encrypt", "--key", key, "-o", filepath.Join(dir, "x.enc"), "--metadata-output", rmeta, "--force", in))
	failed := filepath.Join(dir, "failed.jsonl")
	fails(t, run(t, nil, nil, "decrypt", "--key", to, "-o", filepath.Join(dir, "nope"), "--metadata-output", failed, enc), "")
	if _, err := os.Stat(failed); err == nil {
		t.Fatal("a failed decrypt left a metadata file")
	}
}

// Ctrl-C during a batch: exit 130 with one line, the file in progress
// leaves nothing, and every output that exists is a whole message.
func TestBatchInterrupt(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	fifo := filepath.Join(dir, "stream")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"encrypt", "--key", key, "-o", out, fifo}
	for i := range 20 {
		p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 10_000), 0o600)
		args = append(args, p)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Once 1 MiB went through the FIFO, hsmenv is encrypting it.
	chunk := make([]byte, 1<<20)
	w.Write(chunk)
	cmd.Process.Signal(syscall.SIGINT)
	// More input ends the read in progress; the next write sees the signal.
	go func() {
		for {
			if _, err := w.Write(chunk[:4096]); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || strings.TrimSpace(stderr.String()) != "hsmenv: interrupted" {
		t.Fatalf("%v, stderr %q; want exit 130, hsmenv: interrupted", err, stderr.String())
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		name := e.Name()
		if name == "stream.enc" || !strings.HasSuffix(name, ".enc") {
			t.Fatalf("left %s", name)
		}
		ok(t, run(t, nil, nil, "decrypt", "--key", key, "-o", "/dev/null", filepath.Join(out, name)))
	}
}

// A file's line in a batch gives the same advice as the single-file error:
// a legacy message says how to decrypt it.
func TestBatchErrorHint(t *testing.T) {
	dir := t.TempDir()
	key := rawAESKey(t, dir, "k")
	good, legacy, out := filepath.Join(dir, "good.enc"), filepath.Join(dir, "old.enc"), filepath.Join(dir, "out")
	ok(t, run(t, []byte("text"), nil, "encrypt", "--key", key, "-o", good, "-"))
	os.WriteFile(legacy, v1Header(), 0o600)
	os.Mkdir(out, 0o700)
	r := run(t, nil, nil, "decrypt", "-q", "--key", key, "-o", out, good, legacy)
	if r.code != 1 || !strings.Contains(string(r.stderr), "hsmenv: "+legacy+": ") || !strings.Contains(string(r.stderr), "give --allow-legacy to decrypt it") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}
