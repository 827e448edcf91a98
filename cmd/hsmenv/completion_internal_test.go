package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
)

// complete runs cobra's hidden __complete command on a tree with
// addCompletions applied and returns the words offered.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	root := newRootCmd()
	addCompletions(root)
	addCompletions(root) // twice: as newRootCmd may already have
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"__complete"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, ":") { // the last line is the directive
			words = append(words, strings.SplitN(line, "\t", 2)[0])
		}
	}
	return words
}

// TestFlagCompletion: each flag in flagValues exists and completes to its
// words, not to file names.
func TestFlagCompletion(t *testing.T) {
	for _, fv := range flagValues {
		args := append(slices.Clone(fv.path), "--"+fv.flag, "")
		got := complete(t, args...)
		var want []string
		for _, v := range fv.values {
			want = append(want, strings.SplitN(v, "\t", 2)[0])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s --%s completes to %q, want %q", strings.Join(fv.path, " "), fv.flag, got, want)
		}
	}
	if got := complete(t, "keygen", "--type", "ec-"); !slices.Equal(got, []string{"ec-p256", "ec-p384", "ec-p521"}) {
		t.Errorf("keygen --type ec-: %q", got)
	}
}

// TestSuiteCompletionParses: the suites offered are the ones encrypt takes.
func TestSuiteCompletionParses(t *testing.T) {
	for _, v := range suiteValues {
		s := strings.SplitN(v, "\t", 2)[0]
		if _, err := parseSuite(s); err != nil {
			t.Errorf("completion offers --suite %s: %v", s, err)
		}
	}
}
