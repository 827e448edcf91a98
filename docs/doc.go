// Package docs holds hsmenv's documentation (the Markdown files in this
// directory and the repository's README.md) and the test that runs their
// examples, so that the docs cannot drift from the CLI.
//
// TestExamples (examples_test.go) runs, for each document, its fenced
// blocks tagged sh in order, in one bash -euo pipefail session per document
// (state carries over from block to block, as in a reader's terminal), in a
// scratch directory, with freshly built hsmenv and age-plugin-hsmenv first
// on PATH. The conventions a document follows:
//
//   - Every fence has a tag. sh: commands, run by the test. text: output,
//     synopses, file layouts (not run). go, yaml, ini, json...: not run.
//   - A sh block that cannot run on a test machine (a real HSM, a cluster,
//     systemd) has, on the line right above its fence,
//     <!-- not run: REASON --> and the page says the same in its text.
//   - A sh block with <!-- doctest: env --> right above it only assigns
//     variables that a reader sets to their own machine's values (a module
//     path, a PIN file, a TPM device). The test does not run it: it sets
//     exactly those variables to its sandbox's (a throw-away SoftHSM2 token
//     labelled demo, its PIN file, a swtpm, the repository's checkout) and
//     fails on a variable it does not know (sandbox.value lists them).
//   - A block (go, yaml...) with <!-- doctest: file NAME --> right above it
//     is a file the page tells the reader to save: the test saves it as
//     NAME in the session's current directory at that point.
//   - A text block right after a sh block is its output. Two kinds of its
//     lines are compared with what the block's commands wrote:
//     "exit N" lines: a command expected to fail is written
//     `cmd || echo "exit $?"`, and the exit statuses printed must be the
//     ones the text block shows, in order. Error lines, those starting with
//     "hsmenv: ": each must equal a line the commands wrote (to standard
//     error, or to standard output after a 2>&1), in any order. Before
//     comparing, both lines lose trailing blanks and the run's paths become
//     what a reader sees: its scratch directory $PWD, its HOME /home/me,
//     its TMPDIR /tmp, and any mktemp -d directory (/tmp/tmp.X1aNP1NAP9)
//     /tmp/tmp.XXXXXXXXXX, so the doc shows a realistic path. Where a line
//     holds what differs between runs or machines (a timing, free memory,
//     a random id), the doc writes "..." for it: a line with "..." matches
//     with each "..." standing for any text. Keep the stable parts, the
//     words a reader acts on, outside the "...".
//     Other output lines (results, tables, inspect's header) are not
//     compared: they hold ids, timings and sizes that change on each run,
//     and a doc shows them abridged; they are kept up to date by hand.
//
// Run one document's examples with go test ./docs -run TestExamples/NAME,
// NAME its path with _ for / (docs_tpm.md); a failure names the block's
// file:line, the command that failed and what the block wrote.
//
// The sandbox: HOME is a fresh directory (so ~/.config/hsmenv/keys starts
// empty; the Go caches stay the caller's), TMPDIR is inside the test's
// temporary directory, HSMENV_*, XDG_*, GODEBUG,
// SOFTHSM2_CONF and TPM2TOOLS_TCTI are unset, and the scratch directory
// holds the small sample files the examples name (report.pdf, data, db,
// ...; see sampleFiles).
package docs
