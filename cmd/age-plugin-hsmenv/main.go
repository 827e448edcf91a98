// Command age-plugin-hsmenv is an age plugin for keys in PKCS#11 tokens and
// TPMs, over the same KEKs (and key URIs) as hsmenv; see docs/age.md.
//
//	age-plugin-hsmenv --generate --key URI [-o FILE]
//	age-plugin-hsmenv -y [FILE]
//
// age runs it with --age-plugin=recipient-v1 or identity-v1.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"filippo.io/age/plugin"

	"github.com/hsmenv/hsmenv/ageplugin"
	"github.com/hsmenv/hsmenv/internal/keyenv"
	"github.com/hsmenv/hsmenv/internal/outfile"
	"github.com/hsmenv/hsmenv/internal/pin"
)

const usage = `Usage:
  age-plugin-hsmenv --generate --key URI [-o FILE]
  age-plugin-hsmenv -y [FILE]

--generate writes an age identity file for the existing key URI names (a
pkcs11: key in a token, a tpm: key file or tpm:seal, any hsmenv key URI):
"# created:" and "# recipient:" comment lines, then the AGE-PLUGIN-HSMENV-1
identity, which holds the key URI (never a PIN: pin-value is refused, give
pin-source=file:PATH or let age ask). It does not make keys: that is
"hsmenv keygen" (e.g. hsmenv keygen --type ec-p256 --key 'pkcs11:...').
-o FILE writes the identity there (mode 0600; an existing FILE is not
overwritten) and prints the recipient on standard error.

-y prints the recipient of each identity in FILE (standard input by
default), one per line. It needs no device.

A P-256 EC key's recipient is age1tag1...: age 1.3 and later encrypt to it
with neither this plugin nor the device. For age before 1.3 and for sops,
the identity file also names an age1hsmenv1 recipient of the same key.
Every other key's recipient is age1hsmenv1..., and encrypting to it opens
the key (for AES keys and tpm:seal, the device).

PINs come from the URI's pin-source, else $HSMENV_PKCS11_PIN or
$HSMENV_TPM_PIN, else age asks for them. $HSMENV_PKCS11_MODULE and
$HSMENV_TPM_DEVICE (else $TPM2TOOLS_TCTI) give the module and device a URI
lacks.
`

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	p, err := plugin.New(ageplugin.Name)
	if err != nil {
		return fail(err)
	}
	fs := flag.NewFlagSet("age-plugin-hsmenv", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p.RegisterFlags(fs)
	generate := fs.Bool("generate", false, "")
	key := fs.String("key", "", "")
	out := fs.String("o", "", "")
	fs.StringVar(out, "output", "", "")
	toRecipients := fs.Bool("y", false, "")
	help := fs.Bool("h", false, "")
	fs.BoolVar(help, "help", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "age-plugin-hsmenv: %v\n\n%s", err, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stateMachine := fs.Lookup("age-plugin").Value.String()
	switch {
	case *help:
		fmt.Print(usage)
		return 0
	case stateMachine != "":
		return servePlugin(ctx, p)
	case *generate:
		if *toRecipients || fs.NArg() > 0 {
			return usageError("--generate takes --key URI and -o FILE, nothing else")
		}
		if *key == "" {
			return usageError("--generate needs --key URI (an existing key; hsmenv keygen makes keys)")
		}
		return exit(writeIdentity(ctx, *key, *out))
	case *toRecipients:
		if *key != "" || *out != "" || fs.NArg() > 1 {
			return usageError("-y takes at most one FILE")
		}
		return exit(printRecipients(fs.Arg(0)))
	}
	return usageError("nothing to do")
}

// servePlugin runs the age plugin protocol: PINs age asks for go through
// the protocol (age prompts on its terminal).
func servePlugin(ctx context.Context, p *plugin.Plugin) int {
	opts := keyenv.Options(agePrompt(p))
	p.HandleRecipient(func(data []byte) (age.Recipient, error) {
		k, err := ageplugin.DecodeRecipient(data)
		if err != nil {
			return nil, err
		}
		return ageplugin.NewRecipient(ctx, k, opts)
	})
	identity := func(data []byte) (*ageplugin.Identity, error) {
		k, err := ageplugin.DecodeIdentity(data)
		if err != nil {
			return nil, err
		}
		return ageplugin.NewIdentity(ctx, k, opts)
	}
	p.HandleIdentityAsRecipient(func(data []byte) (age.Recipient, error) {
		id, err := identity(data)
		if err != nil {
			return nil, err
		}
		return id.Recipient(), nil
	})
	p.HandleIdentity(func(data []byte) (age.Identity, error) { return identity(data) })
	return p.Main()
}

// agePrompt asks for a PIN through age (request-secret), once per label in
// this process: a PIN the device rejected is not asked for again (the
// library then refuses the same PIN without sending it), so a wrong PIN is
// one error, not a loop of prompts.
func agePrompt(p *plugin.Plugin) keyenv.Prompt {
	var mu sync.Mutex
	asked := map[string]struct {
		pin string
		err error
	}{}
	return func(_ context.Context, label string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := asked[label]; ok {
			return a.pin, a.err
		}
		v, err := p.RequestValue(label, true)
		if err != nil {
			err = fmt.Errorf("%w (age could not prompt: %v)", pin.ErrNoTerminal, err)
		}
		asked[label] = struct {
			pin string
			err error
		}{v, err}
		return v, err
	}
}

// writeIdentity writes the identity file of the key uri names to path
// (standard output if empty).
func writeIdentity(ctx context.Context, uri, path string) error {
	k, err := ageplugin.Lookup(ctx, uri, keyenv.Options(keyenv.TerminalPrompt))
	if err != nil {
		return err
	}
	id, err := k.Identity()
	if err != nil {
		return err
	}
	recipient, err := k.Recipient()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# created: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "# recipient: %s\n", recipient)
	if k.P256 != nil {
		compat, err := k.PluginRecipient()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "# recipient for age < 1.3 and sops: %s\n", compat)
	}
	fmt.Fprintf(&b, "%s\n", id)
	if err := outfile.WriteFile(path, false, []byte(b.String())); err != nil {
		return err
	}
	if path != "" && path != "-" {
		fmt.Fprintf(os.Stderr, "Public key: %s\n", recipient)
	}
	return nil
}

// printRecipients prints the recipient of each hsmenv identity in the file
// at path (standard input if empty or "-"). Comments and blank lines are
// skipped; any other line is an error naming it.
func printRecipients(path string) error {
	in, name := io.Reader(os.Stdin), "standard input"
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, path
	}
	sc := bufio.NewScanner(io.LimitReader(in, 1<<20))
	var out strings.Builder
	n := 0
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := ageplugin.ParseIdentity(s)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", name, line, err)
		}
		r, err := k.Recipient()
		if err != nil {
			return fmt.Errorf("%s line %d: %w", name, line, err)
		}
		fmt.Fprintln(&out, r)
		n++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%s holds no AGE-PLUGIN-HSMENV-1 identity", name)
	}
	_, err := io.WriteString(os.Stdout, out.String())
	return err
}

func exit(err error) int {
	if err != nil {
		return fail(err)
	}
	return 0
}

func fail(err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if errors.Is(err, context.Canceled) {
		msg = "interrupted"
	}
	fmt.Fprintf(os.Stderr, "age-plugin-hsmenv: %s%s\n", msg, keyenv.Hint(err))
	return 1
}

func usageError(msg string) int {
	fmt.Fprintf(os.Stderr, "age-plugin-hsmenv: %s\n\n%s", msg, usage)
	return 2
}
