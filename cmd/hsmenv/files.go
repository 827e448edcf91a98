package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/mmapfile"
	"github.com/hsmenv/hsmenv/internal/outfile"
	"github.com/hsmenv/hsmenv/resolver"
)

// openFiles opens the input (- for stdin) and prepares the output file;
// the caller closes the one and commits or aborts the other.
func openFiles(inPath, outPath string, force bool) (*os.File, *outfile.File, error) {
	in, err := openInput(inPath)
	if err != nil {
		return nil, nil, err
	}
	out, err := outfile.Create(outPath, force, inPath)
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	return in, out, nil
}

// openKEKs opens the KEKs of the --key flags (or the defaults).
func openKEKs(ctx context.Context, flags []string) ([]envelope.KEK, error) {
	uris, err := keyURIs(flags)
	if err != nil {
		return nil, err
	}
	return resolver.OpenKEKs(ctx, keyOptions(), uris...)
}

// openKeyring opens the keyring of the --key flags (or the defaults).
func openKeyring(ctx context.Context, flags []string) (*envelope.Keyring, error) {
	keks, err := openKEKs(ctx, flags)
	if err != nil {
		return nil, err
	}
	return envelope.NewKeyring(keks...), nil
}

// mapInput returns what the bulk paths read the regular file f through:
// its memory mapping in bounded windows (the workers seal and open straight
// from the page cache), or f itself where it cannot be mapped. close
// releases the mapping.
func mapInput(f *os.File) (ra io.ReaderAt, close func()) {
	m, err := mmapfile.Open(f)
	if err != nil {
		return f, func() {}
	}
	return m, func() { m.Close() }
}

// openInput opens path, or standard input for "-".
func openInput(path string) (*os.File, error) {
	if path == "-" {
		return os.Stdin, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory", path)
	}
	return f, nil
}

// parsePairs parses k=v flags into a context; a repeated key is an error.
func parsePairs(flag string, pairs []string) (envelope.EncryptionContext, error) {
	ec := envelope.EncryptionContext{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q: expected key=value", flag, p)
		}
		if _, dup := ec[k]; dup {
			return nil, usagef("%s: key %q given twice", flag, k)
		}
		ec[k] = v
	}
	return ec, nil
}
