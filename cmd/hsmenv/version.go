package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/hsmenv/hsmenv/resolver"
	"github.com/spf13/cobra"
)

// version and commit override what the build records, for release builds
// and trees the go command does not stamp (git worktrees, -buildvcs=false):
// go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD)".
var version, commit string

// buildInfo is what `hsmenv version` reports.
type buildInfo struct {
	Version  string   `json:"version"`
	Commit   string   `json:"commit,omitempty"`
	Modified bool     `json:"modified,omitempty"`
	Go       string   `json:"go"`
	Platform string   `json:"platform"`
	KEKKinds []string `json:"kek_kinds"`
}

// readBuildInfo returns the version (the -X override, else the main
// module's version as the go command recorded it, else "devel"), the VCS
// commit (the -X override, else the recorded one) and whether the tree had
// uncommitted changes, the Go version and the kinds of KEK this binary
// opens.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, KEKKinds: resolver.Kinds()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// String is the text `hsmenv version` and `hsmenv --version` print.
func (b buildInfo) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "hsmenv %s\n", b.Version)
	commit := b.Commit
	if commit == "" {
		commit = "unknown"
	}
	if b.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(&s, "commit:    %s\n", commit)
	fmt.Fprintf(&s, "go:        %s %s\n", b.Go, b.Platform)
	fmt.Fprintf(&s, "kek kinds: %s\n", strings.Join(b.KEKKinds, ", "))
	return s.String()
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, commit, Go version and the kinds of KEK built in",
		Long: `Print hsmenv's version, the commit it was built from (marked "modified" if the
tree had uncommitted changes), the Go version and platform, and the kinds of
key URI this binary opens. hsmenv --version prints the same.`,
		Example: `  hsmenv version
  hsmenv version --json | jq -r .commit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			_, err := fmt.Print(b)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
