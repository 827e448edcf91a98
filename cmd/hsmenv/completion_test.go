package main_test

import (
	"strings"
	"testing"
)

// TestCompletionScripts: cobra's completion command writes a script for
// each shell the docs explain how to install.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "complete -o default -F __start_hsmenv hsmenv",
		"zsh":        "#compdef hsmenv",
		"fish":       "complete -c hsmenv ",
		"powershell": "Register-ArgumentCompleter -CommandName 'hsmenv'",
	} {
		r := ok(t, run(t, nil, nil, "completion", shell))
		if !strings.Contains(string(r.stdout), want) || len(r.stderr) != 0 {
			t.Errorf("completion %s: no %q in %d bytes; stderr %q", shell, want, len(r.stdout), r.stderr)
		}
	}
}

// TestCompleteCommand: what a shell runs when the user types
// `hsmenv enc<TAB>`, `hsmenv tpm s<TAB>`, `hsmenv encrypt --suite <TAB>`.
func TestCompleteCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"enc"}, []string{"encrypt"}},
		{[]string{"tpm", "s"}, []string{"sign-pcrs", "status"}},
		{[]string{"encrypt", "--fr"}, []string{"--frame-size"}},
		// Needs newRootCmd to call addCompletions after adding the commands.
		{[]string{"encrypt", "--suite", ""}, []string{"0478", "0578"}},
	} {
		r := ok(t, run(t, nil, nil, append([]string{"__complete"}, tc.args...)...))
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(r.stdout)), "\n") {
			if !strings.HasPrefix(line, ":") {
				got = append(got, strings.SplitN(line, "\t", 2)[0])
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("hsmenv %s<TAB>: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
