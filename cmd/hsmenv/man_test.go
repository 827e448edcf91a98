package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// TestManPages writes a man page for every command (hsmenv(1),
// hsmenv-encrypt(1), hsmenv-tpm-ek(1), ...) and checks each has its name,
// synopsis and every flag. `make man` runs it with $HSMENV_MAN_DIR set to
// write the pages there too. It lives in a test so that the binary does
// not link the generator.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	writeManPages(t, dir)
	if out := os.Getenv("HSMENV_MAN_DIR"); out != "" {
		writeManPages(t, out)
	}
	pages := 0
	walkCommands(manTree(), func(c *cobra.Command) {
		pages++
		name := strings.ReplaceAll(c.CommandPath(), " ", "-")
		b, err := os.ReadFile(filepath.Join(dir, name+".1"))
		if err != nil {
			t.Errorf("no page for %q: %v", c.CommandPath(), err)
			return
		}
		page := string(b)
		for _, want := range []string{
			".SH NAME\n" + name + " - ",
			".SH SYNOPSIS\n",
			".SH DESCRIPTION\n",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s.1 lacks %q", name, want)
			}
		}
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && !strings.Contains(page, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s.1 lacks its flag --%s", name, f.Name)
			}
		})
		if strings.Contains(page, "Auto generated") {
			t.Errorf("%s.1 has cobra's generator tag", name)
		}
	})
	if pages < 15 {
		t.Errorf("%d pages: fewer commands than hsmenv has", pages)
	}
	if _, err := os.Stat(filepath.Join(dir, "hsmenv-completion-bash.1")); err != nil {
		t.Error("no page for hsmenv completion bash")
	}
}

// manTree is the command tree as the shell sees it, with cobra's
// completion command, which it adds only when the binary runs.
func manTree() *cobra.Command {
	root := newRootCmd()
	root.InitDefaultCompletionCmd()
	walkCommands(root, func(c *cobra.Command) { c.DisableAutoGenTag = true })
	return root
}

// walkCommands calls f on root and every command under it that has a page.
func walkCommands(root *cobra.Command, f func(*cobra.Command)) {
	f(root)
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && !c.IsAdditionalHelpTopicCommand() {
			walkCommands(c, f)
		}
	}
}

// writeManPages replaces the hsmenv pages in dir with the current ones.
func writeManPages(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "hsmenv*.1"))
	for _, p := range old {
		os.Remove(p)
	}
	header := &doc.GenManHeader{Source: "hsmenv", Manual: "hsmenv manual"}
	if err := doc.GenManTree(manTree(), header, dir); err != nil {
		t.Fatal(err)
	}
}
