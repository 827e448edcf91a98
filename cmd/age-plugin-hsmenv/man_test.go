package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestManPages writes age-plugin-hsmenv(1) from the usage text (the plugin
// has no cobra command tree, so this page is written as roff here) and
// checks it has its name, synopsis and flags. `make man` runs it with
// $HSMENV_MAN_DIR set, next to hsmenv's pages.
func TestManPages(t *testing.T) {
	page := manPage(time.Now())
	for _, want := range []string{
		".SH NAME\nage\\-plugin\\-hsmenv \\- ",
		".SH SYNOPSIS\n.nf\nage\\-plugin\\-hsmenv \\-\\-generate \\-\\-key URI [\\-o FILE]\nage\\-plugin\\-hsmenv \\-y [FILE]\n.fi\n",
		".SH DESCRIPTION\n",
		"\n\\-o FILE writes the identity there",
		"$HSMENV_TPM_DEVICE",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, ".") && !strings.HasPrefix(line, ".SH ") && !strings.HasPrefix(line, ".TH ") &&
			line != ".PP" && line != ".nf" && line != ".fi" {
			t.Errorf("text line taken for a roff request: %q", line)
		}
	}
	for _, dir := range []string{t.TempDir(), os.Getenv("HSMENV_MAN_DIR")} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "age-plugin-hsmenv.1"), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// manPage is the usage text as a man page: its first paragraph (the usage
// lines) the synopsis, the others the description.
func manPage(date time.Time) string {
	paras := strings.Split(strings.TrimSpace(usage), "\n\n")
	synopsis := strings.TrimPrefix(paras[0], "Usage:\n")
	var b strings.Builder
	b.WriteString(`.TH "AGE-PLUGIN-HSMENV" "1" "` + date.Format("Jan 2006") + `" "hsmenv" "hsmenv manual"` + "\n")
	b.WriteString(".SH NAME\n" + roff("age-plugin-hsmenv - age plugin for keys in PKCS#11 tokens and TPMs") + "\n")
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	for _, line := range strings.Split(synopsis, "\n") {
		b.WriteString(roff(strings.TrimSpace(line)) + "\n")
	}
	b.WriteString(".fi\n.SH DESCRIPTION\n")
	for i, p := range paras[1:] {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roff(p) + "\n")
	}
	b.WriteString(".SH SEE ALSO\n" + roff("age(1), hsmenv(1), hsmenv-keygen(1)") + "\n")
	return b.String()
}

// roff escapes text for a man page: backslashes and minus signs, and lines
// that would start with a request's dot or quote.
func roff(text string) string {
	text = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(text)
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}
