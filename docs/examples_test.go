package docs_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// A block is one fenced block of a document.
type block struct {
	file   string // relative to the repository root
	line   int    // line of the opening fence, 1-based
	lang   string // first word of the info string
	lines  []string
	notRun string // the reason of a <!-- not run: REASON --> above it
	env    bool   // <!-- doctest: env --> above it
	saveAs string // the NAME of a <!-- doctest: file NAME --> above it
	output *block // the text block right after a sh block
}

var (
	fenceRE  = regexp.MustCompile("^(\\s*)(```+)\\s*(.*)$")
	notRunRE = regexp.MustCompile(`^<!--\s*not run:\s*(.+?)\s*-->$`)
	envRE    = regexp.MustCompile(`^<!--\s*doctest:\s*env\s*-->$`)
	fileRE   = regexp.MustCompile(`^<!--\s*doctest:\s*file\s+([A-Za-z0-9._-]+)\s*-->$`)
	assignRE = regexp.MustCompile(`^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=`)
	exitRE   = regexp.MustCompile(`^exit [0-9]+$`)
)

// parse splits a Markdown document into its fenced blocks. Fences may be
// indented (in lists); the block's lines lose that indentation.
func parse(file string, text string) ([]*block, error) {
	var blocks []*block
	var cur *block
	indent, fence := "", ""
	prev := "" // the last non-blank line outside blocks
	blankSince := false
	for i, l := range strings.Split(text, "\n") {
		if cur != nil {
			if strings.TrimSpace(l) == fence {
				blocks = append(blocks, cur)
				cur, prev, blankSince = nil, fence, false
				continue
			}
			cur.lines = append(cur.lines, strings.TrimPrefix(l, indent))
			continue
		}
		m := fenceRE.FindStringSubmatch(l)
		if m == nil {
			if strings.TrimSpace(l) == "" {
				blankSince = true
			} else {
				prev, blankSince = strings.TrimSpace(l), false
			}
			continue
		}
		indent, fence = m[1], m[2]
		lang, _, _ := strings.Cut(strings.TrimSpace(m[3]), " ")
		cur = &block{file: file, line: i + 1, lang: lang}
		if !blankSince {
			if r := notRunRE.FindStringSubmatch(prev); r != nil {
				cur.notRun = r[1]
			}
			cur.env = envRE.MatchString(prev)
			if f := fileRE.FindStringSubmatch(prev); f != nil {
				cur.saveAs = f[1]
			}
		}
		// A text block after a sh block, with only blank lines between, is
		// its output.
		if n := len(blocks); n > 0 && cur.lang == "text" && prev == fence && blocks[n-1].lang == "sh" {
			blocks[n-1].output = cur
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: fence not closed", file, cur.line)
	}
	return blocks, nil
}

// check enforces the conventions of doc.go on one document's blocks.
func check(blocks []*block) []error {
	var errs []error
	for _, b := range blocks {
		switch {
		case b.lang == "":
			errs = append(errs, fmt.Errorf("%s:%d: a fence without a tag: tag it sh (run by the test), text (output, synopses) or its language", b.file, b.line))
		case b.lang == "bash" || b.lang == "shell" || b.lang == "console" || b.lang == "shell-session":
			errs = append(errs, fmt.Errorf("%s:%d: shell block tagged %s: tag it sh (run) and put output in a text block", b.file, b.line, b.lang))
		case b.saveAs != "" && (b.lang == "sh" || b.lang == "" || strings.Contains(b.saveAs, "..")):
			errs = append(errs, fmt.Errorf("%s:%d: a file marker on a %q block or with a path: it saves a program or a configuration, by a plain name, into the current directory", b.file, b.line, b.lang))
		case b.lang != "sh" && (b.notRun != "" || b.env):
			errs = append(errs, fmt.Errorf("%s:%d: a not-run or env marker on a %s block (only sh blocks are run)", b.file, b.line, b.lang))
		case b.env && b.notRun != "":
			errs = append(errs, fmt.Errorf("%s:%d: both env and not-run markers", b.file, b.line))
		}
		if b.env {
			for i, l := range b.lines {
				l = strings.TrimSpace(l)
				if l != "" && !strings.HasPrefix(l, "#") && assignRE.FindString(l) == "" {
					errs = append(errs, fmt.Errorf("%s:%d: an env block holds only VAR=value lines, not %q", b.file, b.line+1+i, l))
				}
			}
		}
	}
	return errs
}

// sampleFiles are the inputs the examples name, made in each document's
// scratch directory: small, so the whole test stays fast.
var sampleFiles = map[string]int{
	"report.pdf":   5000,
	"data":         100000,
	"db":           20000,
	"cred":         300,
	"wifi.conf":    200,
	"secrets.txt":  100,
	"secrets.yaml": 0, // made as YAML below
}

func TestExamples(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{"README.md"}
	err = filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			docs = append(docs, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(docs[1:])

	// The tools the examples call besides hsmenv (scripts/deps.sh
	// installs them): missing ones fail the test under $CI and skip it
	// otherwise.
	for _, tool := range []string{"bash", "softhsm2-util", "swtpm", "tpm2_pcrextend", "tpm2_createprimary", "openssl", "jq", "age", "timeout", "cmp", "od"} {
		softhsmtest.Require(t, tool, tool)
	}
	bin := buildBinaries(t, root)
	goEnv := goCaches(t)
	var summary []string
	ran, env, saved, skipped := 0, 0, 0, 0
	for _, d := range docs {
		// One subtest per document, named by its path with _ for / (go test
		// -run TestExamples/docs_tpm.md runs one).
		t.Run(strings.ReplaceAll(d, "/", "_"), func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join(root, d))
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := parse(d, string(text))
			if err != nil {
				t.Fatal(err)
			}
			bad := append(check(blocks), checkLinks(root, d, string(text))...)
			if len(bad) > 0 {
				t.Fatalf("%s breaks the conventions of docs/doc.go:\n%v", d, errors.Join(bad...))
			}
			var run []*block
			for _, b := range blocks {
				switch {
				case b.saveAs != "":
					run = append(run, b)
				case b.lang != "sh":
				case b.notRun != "":
					skipped++
					summary = append(summary, fmt.Sprintf("  not run: %s:%d: %s", b.file, b.line, b.notRun))
				default:
					run = append(run, b)
				}
			}
			for _, b := range run {
				switch {
				case b.env:
					env++
				case b.saveAs != "":
					saved++
				default:
					ran++
				}
			}
			if len(run) > 0 {
				runDoc(t, root, bin, goEnv, run)
			}
		})
	}
	t.Logf("doc examples: ran %d sh blocks (and set %d env blocks to the sandbox's values, saved %d files), %d not run:\n%s",
		ran, env, saved, skipped, strings.Join(summary, "\n"))
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// checkLinks reports relative links of a document to files that are not in
// the repository (a file outside it, such as ../notes.md, is
// missing for every reader of the repository).
func checkLinks(root, doc, text string) []error {
	var errs []error
	for i, l := range strings.Split(text, "\n") {
		for _, m := range linkRE.FindAllStringSubmatch(l, -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := filepath.Join(root, filepath.Dir(doc), target)
			if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
				errs = append(errs, fmt.Errorf("%s:%d: link to %s, outside the repository", doc, i+1, m[1]))
			} else if _, err := os.Stat(p); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: link to %s, which does not exist", doc, i+1, m[1]))
			}
		}
	}
	return errs
}

// buildBinaries builds hsmenv and age-plugin-hsmenv into a directory that
// it returns.
func buildBinaries(t *testing.T, root string) string {
	dir := t.TempDir()
	for _, c := range []string{"hsmenv", "age-plugin-hsmenv"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, c), "./cmd/"+c)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", c, err, out)
		}
	}
	return dir
}

// goCaches is the Go module and build caches of the test's environment, for
// the examples that build Go programs under their fresh HOME (which would
// otherwise start with empty caches).
func goCaches(t *testing.T) []string {
	out, err := exec.Command("go", "env", "GOMODCACHE", "GOCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	v := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(v) != 3 {
		t.Fatalf("go env: %q", out)
	}
	return []string{"GOMODCACHE=" + v[0], "GOCACHE=" + v[1], "GOPATH=" + v[2]}
}

// sandbox makes what one document's env blocks refer to, on demand.
type sandbox struct {
	t     *testing.T
	root  string // the repository
	token *softhsmtest.Token
	tpm   *tpmtest.SWTPM
	ek    bool         // the swtpm needs EK certificates (VENDOR_ROOT is used)
	ca    tpmtest.EKCA // their CA, when ek
}

func (s *sandbox) softhsm() *softhsmtest.Token {
	if s.token == nil {
		s.token = softhsmtest.New(s.t, softhsmtest.Options{Label: "demo"})
	}
	return s.token
}

func (s *sandbox) device() string {
	switch {
	case s.tpm != nil:
	case s.ek:
		s.tpm, s.ca = tpmtest.StartWithEKCert(s.t)
	default:
		s.tpm = tpmtest.Start(s.t)
	}
	return s.tpm.Device()
}

// value is the sandbox's value of a variable an env block sets.
func (s *sandbox) value(name string) (string, bool) {
	switch name {
	case "SOFTHSM2_CONF":
		return s.softhsm().Conf, true
	case "M", "MODULE", "HSMENV_PKCS11_MODULE":
		return s.softhsm().Module, true
	case "PIN_FILE":
		return s.softhsm().PINFile, true
	case "DEV", "HSMENV_TPM_DEVICE":
		return s.device(), true
	case "SRC":
		return s.root, true
	case "VENDOR_ROOT", "VENDOR_INTERMEDIATE":
		s.device() // with EK certificates: runDoc saw VENDOR_ROOT first
		if name == "VENDOR_ROOT" {
			return s.ca.Root, true
		}
		return s.ca.Intermediate, true
	case "TPM2TOOLS_TCTI":
		s.device()
		return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", s.tpm.Port), true
	}
	return "", false
}

// runDoc runs one document's sh blocks in one bash session.
func runDoc(t *testing.T, root, bin string, goEnv []string, blocks []*block) {
	tmp := t.TempDir()
	home, work, state := filepath.Join(tmp, "home"), filepath.Join(tmp, "work"), filepath.Join(tmp, "doctest")
	for _, d := range []string{home, work, state, filepath.Join(tmp, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	makeSamples(t, work)
	t.Cleanup(func() { stopDaemons(tmp) })

	sb := &sandbox{t: t, root: root}
	// A document that names the EK certificates' CA gets a swtpm that has
	// them from the start (its other env blocks may come first).
	for _, b := range blocks {
		for _, l := range b.lines {
			if m := assignRE.FindStringSubmatch(strings.TrimSpace(l)); b.env && m != nil && m[1] == "VENDOR_ROOT" {
				sb.ek = true
			}
		}
	}
	var script strings.Builder
	var where []string // script line (0-based) -> file:line
	emit := func(src string, l string) {
		script.WriteString(l + "\n")
		where = append(where, src)
	}
	emit("", "set -euo pipefail")
	emit("", `trap '[ -e "$DOCTEST_STATE/failed" ] || printf "%s\n%s\n" "$LINENO" "$BASH_COMMAND" > "$DOCTEST_STATE/failed"' ERR`)
	for i, b := range blocks {
		src := fmt.Sprintf("%s:%d", b.file, b.line)
		emit(src, fmt.Sprintf(`echo %d > "$DOCTEST_STATE/block"`, i))
		if b.env {
			for _, l := range b.lines {
				m := assignRE.FindStringSubmatch(strings.TrimSpace(l))
				if m == nil {
					continue
				}
				v, ok := sb.value(m[1])
				if !ok {
					t.Fatalf("%s: env block sets %s, which the doc test does not know (it knows SOFTHSM2_CONF, M, MODULE, HSMENV_PKCS11_MODULE, PIN_FILE, DEV, HSMENV_TPM_DEVICE, TPM2TOOLS_TCTI, SRC, VENDOR_ROOT, VENDOR_INTERMEDIATE)", src, m[1])
				}
				emit(src, fmt.Sprintf("export %s=%s", m[1], strconv.Quote(v)))
			}
			continue
		}
		if b.saveAs != "" {
			// Saved as the reader would save it: its lines, verbatim.
			emit(src, fmt.Sprintf("cat > %s <<'DOCTEST_EOF'", b.saveAs))
			for j, l := range b.lines {
				emit(fmt.Sprintf("%s:%d", b.file, b.line+1+j), l)
			}
			emit(src, "DOCTEST_EOF")
			continue
		}
		emit(src, "{")
		for j, l := range b.lines {
			emit(fmt.Sprintf("%s:%d", b.file, b.line+1+j), l)
		}
		emit(src, fmt.Sprintf(`} > "$DOCTEST_STATE/%d.out" 2> "$DOCTEST_STATE/%d.err"`, i, i))
	}
	scriptFile := filepath.Join(state, "script.sh")
	if err := os.WriteFile(scriptFile, []byte(script.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", scriptFile)
	cmd.Dir = work
	cmd.Env = append(sandboxEnv(bin, home, filepath.Join(tmp, "tmp"), state), goEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	logf, err := os.Create(filepath.Join(state, "bash.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Stdin = nil
	runErr := cmd.Run()

	last := -1
	if s, err := os.ReadFile(filepath.Join(state, "block")); err == nil {
		last, _ = strconv.Atoi(strings.TrimSpace(string(s)))
	}
	if runErr != nil {
		msg := fmt.Sprintf("bash: %v", runErr)
		if ctx.Err() != nil {
			msg = "timed out after 3 minutes"
		}
		if f, err := os.ReadFile(filepath.Join(state, "failed")); err == nil {
			parts := strings.SplitN(string(f), "\n", 2)
			n, _ := strconv.Atoi(parts[0])
			loc := "?"
			if n >= 1 && n <= len(where) {
				loc = where[n-1]
			}
			msg = fmt.Sprintf("%s: %s: command failed: %s", loc, msg, strings.TrimSpace(parts[1]))
		}
		if last >= 0 {
			msg += fmt.Sprintf("\nin the block at %s:%d", blocks[last].file, blocks[last].line)
			msg += blockOutput(state, last)
		}
		if b, _ := os.ReadFile(filepath.Join(state, "bash.log")); len(b) > 0 {
			msg += "\nbash:\n" + string(b)
		}
		t.Fatal(msg)
	}
	// Expected exit statuses ("exit N" lines of the output block) and
	// error lines ("hsmenv: ..." lines).
	norm := normalizer(map[string]string{work: "$PWD", home: "/home/me", filepath.Join(tmp, "tmp"): "/tmp"})
	for i, b := range blocks {
		if b.output == nil {
			continue
		}
		want := exitLines(b.output.lines)
		out, _ := os.ReadFile(filepath.Join(state, fmt.Sprintf("%d.out", i)))
		errOut, _ := os.ReadFile(filepath.Join(state, fmt.Sprintf("%d.err", i)))
		written := strings.Split(string(out)+"\n"+string(errOut), "\n")
		got := exitLines(written)
		if !slices.Equal(got, want) {
			t.Errorf("%s:%d: the output block (line %d) shows %q, the commands printed %q%s",
				b.file, b.line, b.output.line, want, got, blockOutput(state, i))
		}
		for j, l := range b.output.lines {
			if !strings.HasPrefix(l, "hsmenv: ") {
				continue
			}
			if !slices.ContainsFunc(written, func(w string) bool { return lineMatches(norm(l), norm(w)) }) {
				t.Errorf("%s:%d: the output block shows the error line\n\t%s\nwhich the commands did not print (normalized, they printed:\n\t%s\n)",
					b.file, b.output.line+1+j, l, strings.Join(errorLines(written, norm), "\n\t"))
			}
		}
	}
}

// mktempRE matches the directories mktemp -d makes (/tmp/tmp.X1aNP1NAP9),
// whose names differ on each run.
var mktempRE = regexp.MustCompile(`/tmp\.[A-Za-z0-9]{10}\b`)

// normalizer returns what makes a line of a document and a line a run wrote
// comparable: the run's directories become the names the documents use for
// them (paths), and every mktemp -d directory is /tmp.XXXXXXXXXX.
func normalizer(paths map[string]string) func(string) string {
	var pairs []string
	keys := slices.Collect(maps.Keys(paths))
	// Longest first: a path inside another is replaced before its parent.
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		pairs = append(pairs, k, paths[k])
	}
	r := strings.NewReplacer(pairs...)
	return func(s string) string {
		return mktempRE.ReplaceAllString(r.Replace(strings.TrimRight(s, " \t\r")), "/tmp.XXXXXXXXXX")
	}
}

// lineMatches reports whether a line a document shows matches a line a run
// wrote: equal, or, when the document's line holds "...", equal with each
// "..." standing for any text (an id, a timing, a size).
func lineMatches(doc, run string) bool {
	if !strings.Contains(doc, "...") {
		return doc == run
	}
	parts := strings.Split(doc, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(run)
}

// errorLines are the normalized lines of out that start with "hsmenv: ",
// for a failure message.
func errorLines(out []string, norm func(string) string) []string {
	var r []string
	for _, l := range out {
		if strings.HasPrefix(l, "hsmenv: ") {
			r = append(r, norm(l))
		}
	}
	return r
}

// blockOutput is what block i wrote, for a failure message.
func blockOutput(state string, i int) string {
	s := ""
	for _, f := range []string{"out", "err"} {
		b, _ := os.ReadFile(filepath.Join(state, fmt.Sprintf("%d.%s", i, f)))
		if len(b) > 4000 {
			b = append(b[:4000], "..."...)
		}
		if len(b) > 0 {
			s += fmt.Sprintf("\nstd%s:\n%s", f, b)
		}
	}
	return s
}

func exitLines(lines []string) []string {
	var r []string
	for _, l := range lines {
		if exitRE.MatchString(strings.TrimSpace(l)) {
			r = append(r, strings.TrimSpace(l))
		}
	}
	return r
}

// sandboxEnv is the environment of a document's bash: the built binaries
// first on PATH, a fresh HOME and TMPDIR, no hsmenv, SoftHSM2 or tpm2-tools
// settings from the caller.
func sandboxEnv(bin, home, tmp, state string) []string {
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(name, "HSMENV_") || strings.HasPrefix(name, "XDG_") || slices.Contains([]string{"SOFTHSM2_CONF", "TPM2TOOLS_TCTI", "HOME", "TMPDIR", "PATH", "GODEBUG"}, name) {
			continue
		}
		env = append(env, e)
	}
	return append(env, "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+home, "TMPDIR="+tmp, "DOCTEST_STATE="+state)
}

func makeSamples(t *testing.T, dir string) {
	for name, size := range sampleFiles {
		b := make([]byte, size)
		rand.Read(b)
		if name == "secrets.yaml" {
			b = []byte("db_password: hunter2\napi_token: abc123\n")
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// stopDaemons ends the swtpm daemons a document started (swtpm --daemon
// --pid file=...swtpm.pid) and left running: only processes named swtpm
// whose pid file lies in the document's temporary directory.
func stopDaemons(tmp string) {
	filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "swtpm.pid" {
			return nil
		}
		b, _ := os.ReadFile(p)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return nil
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "swtpm" {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
		return nil
	})
}

func TestErrorLineRule(t *testing.T) {
	norm := normalizer(map[string]string{"/t/x/work": "$PWD", "/t/x/home": "/home/me", "/t/x/tmp": "/tmp"})
	for _, c := range []struct {
		doc, run string
		want     bool
	}{
		{"hsmenv: a: b", "hsmenv: a: b", true},
		{"hsmenv: a: b", "hsmenv: a: c", false},
		{"hsmenv: a: b", "hsmenv: a: b ", true},
		{"hsmenv: need 98 TiB, ... GiB is available; use fewer", "hsmenv: need 98 TiB, 22.6 GiB is available; use fewer", true},
		{"hsmenv: need 98 TiB, ... GiB is available; use fewer", "hsmenv: need 98 TiB, 22.6 GiB is free; use fewer", false},
		{"hsmenv: a (b...) c", "hsmenv: a (b.x) c", true}, // the rest is literal text, not a regexp
		{"hsmenv: a (b...) c", "hsmenv: a [b] c", false},
		{"hsmenv: key tpm:key-file=/tmp/tmp.X1aNP1NAP9/k: bad", "hsmenv: key tpm:key-file=/t/x/tmp/tmp.Om5JQNWUbC/k: bad", true},
		{"hsmenv: key tpm:key-file=/tmp/tmp.X1aNP1NAP9/k: bad", "hsmenv: key tpm:key-file=/t/x/work/tmp.Om5JQNWUbC/k: bad", false},
		{"hsmenv: list URIs in /home/me/.config/hsmenv/keys", "hsmenv: list URIs in /t/x/home/.config/hsmenv/keys", true},
		{"hsmenv: $PWD/a.key: bad", "hsmenv: /t/x/work/a.key: bad", true},
	} {
		if got := lineMatches(norm(c.doc), norm(c.run)); got != c.want {
			t.Errorf("doc %q, run %q: match %v, want %v", c.doc, c.run, got, c.want)
		}
	}
}
