package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/spf13/cobra"
)

// checkResult is one key's line of `hsmenv check`.
type checkResult struct {
	URI         string  `json:"uri"` // redacted
	OK          bool    `json:"ok"`
	EncryptOnly bool    `json:"encrypt_only,omitempty"`
	Mechanism   string  `json:"mechanism,omitempty"`
	Layout      string  `json:"layout,omitempty"`
	OpenMS      float64 `json:"open_ms"`
	WrapMS      float64 `json:"wrap_ms,omitempty"`
	UnwrapMS    float64 `json:"unwrap_ms,omitempty"`
	Error       string  `json:"error,omitempty"`
}

func newCheckCmd() *cobra.Command {
	var (
		keys                  []string
		asJSON, requireUnwrap bool
	)
	cmd := &cobra.Command{
		Use:   "check [--key URI]... [--require-unwrap] [--json]",
		Short: "Check each key with a wrap and unwrap round trip, naming its mechanism",
		Long: `Open each key, wrap a fresh random data key with it, unwrap that back and
compare, and print one line per key: OK or FAIL, the key URI (without any
PIN), the mechanism and EDK layout it used, and how long opening, wrapping and
unwrapping took. Every key is checked even when one fails; the exit status is
0 only when all pass.

An encrypt-only key (a public key without its private half: raw-rsa with only
public-key=, raw-ecdh with the ephemeral schema, tpm:ek=PEMFILE) cannot
unwrap: its wrap is checked and it passes, marked encrypt-only, unless
--require-unwrap is given (on a host that must decrypt).

Without --key, the keys of $HSMENV_KEY or of the config file are checked.`,
		Example: `  hsmenv check --key "$URI"
  hsmenv check --key 'tpm:seal?device=/dev/tpmrm0' --key "pkcs11:token=prod;object=kek?module-path=$SO&pin-source=file:pin"
  hsmenv check --json | jq '.[] | select(.ok | not)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			uris, err := keyURIs(keys)
			if err != nil {
				return err
			}
			var results []checkResult
			failed := 0
			for _, u := range uris {
				r := checkKey(cmd.Context(), u, requireUnwrap)
				// A later key of the same token must log in with its own PIN.
				hsm.ForgetLogin(u, hsm.WithModule(keyOptions().PKCS11Module))
				if err := cmd.Context().Err(); err != nil {
					return err // interrupted: exitStatus reports the signal
				}
				if !r.OK {
					failed++
				}
				if asJSON {
					results = append(results, r)
				} else {
					fmt.Println(r)
				}
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			}
			switch {
			case failed == 0:
				return nil
			case len(uris) == 1:
				return errors.New("the key failed the check")
			}
			return fmt.Errorf("%d of %d keys failed the check", failed, len(uris))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keys, "key", nil, "key URI (repeat for several)")
	f.BoolVar(&requireUnwrap, "require-unwrap", false, "fail encrypt-only keys, which cannot unwrap")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// checkContext is the encryption context the check's data keys are bound
// to, as a message's would be.
var checkContext = envelope.EncryptionContext{"purpose": "hsmenv check"}

// checkKey opens uri and runs a wrap and unwrap round trip of a random
// 32-byte data key with it.
func checkKey(ctx context.Context, uri string, requireUnwrap bool) checkResult {
	r := checkResult{URI: keyuri.Redact(uri)}
	fail := func(err error) checkResult {
		// The line starts with the URI: the error need not name it again.
		r.Error = errorLine(err)
		var ke *keyuri.KeyError
		if errors.As(err, &ke) {
			r.Error = strings.TrimPrefix(r.Error, "key "+ke.Key+": ")
		}
		return r
	}
	start := time.Now()
	kek, err := resolver.OpenKEK(ctx, uri, keyOptions())
	r.OpenMS = millis(time.Since(start))
	if err != nil {
		return fail(err)
	}
	var unwraps bool
	r.Mechanism, r.Layout, unwraps = resolver.Describe(kek)
	dek := make([]byte, 32)
	rand.Read(dek)
	defer clear(dek)
	start = time.Now()
	edk, err := kek.Wrap(ctx, dek, checkContext)
	r.WrapMS = millis(time.Since(start))
	if err != nil {
		return fail(fmt.Errorf("wrap: %w", err))
	}
	if !kek.Claims(edk) {
		return fail(errors.New("the key does not recognize the EDK it wrapped"))
	}
	if !unwraps {
		r.EncryptOnly = true
		if requireUnwrap {
			return fail(errors.New("encrypt-only: wrap checked, unwrap not possible (no private key) and --require-unwrap was given"))
		}
		r.OK = true
		return r
	}
	start = time.Now()
	got, err := kek.Unwrap(ctx, edk, checkContext)
	r.UnwrapMS = millis(time.Since(start))
	if err != nil {
		return fail(fmt.Errorf("unwrap: %w", err))
	}
	defer clear(got)
	if !bytes.Equal(got, dek) {
		return fail(errors.New("unwrap returned another data key than was wrapped"))
	}
	r.OK = true
	return r
}

// String is the result's line: "OK   URI: mechanism; EDK layout L; timings"
// or "FAIL URI: reason".
func (r checkResult) String() string {
	if !r.OK {
		return fmt.Sprintf("FAIL %s: %s", r.URI, r.Error)
	}
	s := fmt.Sprintf("OK   %s: %s", r.URI, r.Mechanism)
	if r.Layout != "" {
		s += ", " + r.Layout + " layout"
	}
	s += fmt.Sprintf("; open %.1f ms, wrap %.1f ms", r.OpenMS, r.WrapMS)
	if r.EncryptOnly {
		return s + "; encrypt-only: wrap checked, unwrap not possible"
	}
	return s + fmt.Sprintf(", unwrap %.1f ms", r.UnwrapMS)
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
