// Command hsmenv encrypts and decrypts files in the AWS Encryption SDK
// message format v2 under keys held in HSMs, TPMs or (for tests and interop)
// software keys. It is a thin layer over the hsmenv packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyenv"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/pin"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/spf13/cobra"
)

// exitUsage is the exit status of a command line that does not parse.
const exitUsage = 2

func main() {
	harden()
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			cancel(signalError{s})
		}
	}()
	// Ctrl-C at a PIN prompt (raw mode: no SIGINT) cancels the same way,
	// before the prompt returns, so no further key is tried.
	pin.OnInterrupt(func(s os.Signal) { cancel(signalError{s}) })
	err := newRootCmd().ExecuteContext(ctx)
	os.Exit(exitStatus(ctx, err))
}

// exitStatus prints err (one line) and returns the exit status: 0 on
// success; 128+N after signal N (130 for Ctrl-C, also at a PIN prompt;
// 143 for SIGTERM); exitUsage for a bad command line; 1 otherwise.
func exitStatus(ctx context.Context, err error) int {
	if err == nil {
		return 0
	}
	var se signalError
	if errors.As(context.Cause(ctx), &se) || errors.As(err, &se) {
		fmt.Fprintf(os.Stderr, "hsmenv: %s\n", se)
		return se.status()
	}
	if errors.Is(err, pin.ErrInterrupted) {
		fmt.Fprintf(os.Stderr, "hsmenv: %s\n", signalError{os.Interrupt})
		return signalError{os.Interrupt}.status()
	}
	fmt.Fprintf(os.Stderr, "hsmenv: %s\n", errorLine(err))
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return exitUsage
	}
	return 1
}

// errorLine is err as the one line hsmenv prints of it, with hint's advice.
func errorLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ") + hint(err)
}

// hint adds to err what the user can do about it: the flag that reads a
// legacy message, or keyenv.Hint's advice on keys.
func hint(err error) string {
	if errors.Is(err, envelope.ErrCommitmentPolicy) {
		return "; give --allow-legacy to decrypt it"
	}
	return keyenv.Hint(err)
}

// signalError is why the command's context was cancelled: a signal, or
// Ctrl-C typed at a PIN prompt (os.Interrupt).
type signalError struct{ sig os.Signal }

func (e signalError) Error() string {
	if e.sig == syscall.SIGTERM {
		return "terminated"
	}
	return "interrupted"
}

// status is the shell's convention for a command ended by a signal.
func (e signalError) status() int {
	if n, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "hsmenv",
		Short: "Envelope encryption with keys that never leave hardware",
		Long: `hsmenv encrypts and decrypts files in the AWS Encryption SDK message format v2.
Each message gets a fresh data key, wrapped by every --key given; any one of
them opens the message.

Key URIs:
  raw-aes:namespace=NS;name=NAME?key-file=PATH[&key-encoding=raw|hex|base64]
    (PATH holds 16, 24 or 32 raw key bytes; a file of hex or base64 text of
     such a key is refused unless key-encoding= says how to read it)
  raw-rsa:namespace=NS;name=NAME;padding=oaep-sha256?public-key=PEM&private-key=PEM
  raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=PEM     (also discovery, static)
  pkcs11:token=LABEL;object=LABEL?module-path=SO&pin-source=file:PATH
    (PIN also from $HSMENV_PKCS11_PIN or a prompt; module from $HSMENV_PKCS11_MODULE)
  tpm:seal[;pcrs=sha256:0,7][;pin=yes]?device=DEV
  tpm:key-file=PATH?device=DEV      (made by keygen --type rsa-2048|ecc-p256)
    (DEV: /dev/tpmrm0, tcp://HOST:PORT, unix:///PATH or a TCTI string such as
     swtpm:host=H,port=P; default $HSMENV_TPM_DEVICE, else $TPM2TOOLS_TCTI;
     PIN from pin-source=file:PATH or $HSMENV_TPM_PIN)

Without --key, the URIs in $HSMENV_KEY (separated by white space) are used,
else those in the config file (` + "`$XDG_CONFIG_HOME/hsmenv/keys`" + `, one URI a line,
# comments allowed).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = readBuildInfo().String()
	root.SetVersionTemplate("{{.Version}}")
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newEncryptCmd(), newDecryptCmd(), newInspectCmd(), newKeygenCmd(), newKeysCmd(), newPubkeyCmd(), newRewrapCmd(), newBenchCmd(), newKMSPluginCmd(), newTPMCmd(), newVersionCmd(), newTokensCmd(), newCheckCmd())
	addCompletions(root)
	return root
}

// keyURIs returns the --key values, or those of $HSMENV_KEY.
func keyURIs(flags []string) ([]string, error) {
	if len(flags) > 0 {
		return flags, nil
	}
	if env := strings.Fields(os.Getenv("HSMENV_KEY")); len(env) > 0 {
		return env, nil
	}
	path, uris, err := configKeys()
	if err != nil {
		return nil, err
	}
	if len(uris) > 0 {
		return uris, nil
	}
	return nil, usagef("no key: give --key URI, set HSMENV_KEY, or list URIs in %s", path)
}

// configKeys reads the default key URIs from the user's config file: one a
// line, blank lines and # comments ignored. A missing file is no error; a
// line that is not a key URI (keyuri.Parse, and a scheme resolver opens) is,
// naming the file and the line.
func configKeys() (string, []string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "$XDG_CONFIG_HOME/hsmenv/keys", nil, nil
	}
	path := filepath.Join(dir, "hsmenv", "keys")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return path, nil, nil
	}
	if err != nil {
		return path, nil, fmt.Errorf("reading default keys: %w", err)
	}
	var uris []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := checkKeyURI(line); err != nil {
			return path, nil, fmt.Errorf("%s, line %d: %w", path, i+1, err)
		}
		uris = append(uris, line)
	}
	return path, uris, nil
}

// checkKeyURI checks that s parses as a key URI of a scheme the resolver
// opens, without opening it. Errors show s only through keyuri.Redact.
func checkKeyURI(s string) error {
	u, err := keyuri.Parse(s)
	if err != nil {
		return err
	}
	if !slices.Contains(resolver.Schemes(), u.Scheme) {
		return fmt.Errorf("%w %q (known: %s)", resolver.ErrUnknownScheme, u.Scheme, strings.Join(resolver.Schemes(), ", "))
	}
	return nil
}

// oneInput checks the positional arguments: exactly one input, "-" for stdin.
func oneInput(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s takes one input file (- for standard input), got %d arguments", cmd.Name(), len(args))
	}
	return nil
}
