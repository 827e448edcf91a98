package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/spf13/cobra"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	var maxEDKs int
	cmd := &cobra.Command{
		Use:   "inspect [--json] IN",
		Short: "Show a message's header: suite, frame size, context, EDKs (no key needed)",
		Long: `Show a message's header. No key is used, so nothing shown is authenticated:
it is what the message claims. An ASCII-armored message (encrypt -a) is
recognised.`,
		Example: `  hsmenv inspect report.pdf.enc
  hsmenv inspect --json report.pdf.enc | jq .context`,
		Args: oneInput,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			if maxEDKs < 1 {
				return usagef("--max-edks %d: give a count of 1 or more", maxEDKs)
			}
			src, _, armored, err := openMessage(in)
			if err != nil {
				return err
			}
			h, err := envelope.ParseHeaderMax(unarmored(src, armored), maxEDKs)
			if err != nil {
				return err
			}
			o := newHeaderObject(h)
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(o)
			}
			printInspect(os.Stdout, o)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().IntVar(&maxEDKs, "max-edks", envelope.DefaultMaxEncryptedDataKeys, "refuse a header with more encrypted data keys (each may take 192 KiB)")
	return cmd
}

func printInspect(w io.Writer, o headerObject) {
	body := "framed, frame size " + strconv.Itoa(int(o.FrameSize)) + " bytes"
	if !o.Framed {
		body = "non-framed"
	}
	sig := "no signature"
	if o.Signed {
		sig = "ECDSA signature footer"
	}
	fmt.Fprintf(w, "version:     %d\n", o.Version)
	fmt.Fprintf(w, "suite:       %s (%s)\n", o.Suite, sig)
	fmt.Fprintf(w, "message id:  %s\n", o.MessageID)
	fmt.Fprintf(w, "body:        %s\n", body)
	fmt.Fprintf(w, "header:      %d bytes\n", o.HeaderSize)
	keys := make([]string, 0, len(o.Context))
	for k := range o.Context {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := "pairs"
	if len(keys) == 1 {
		pairs = "pair"
	}
	fmt.Fprintf(w, "context:     %d %s\n", len(keys), pairs)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s = %s\n", strconv.Quote(k), strconv.Quote(o.Context[k]))
	}
	fmt.Fprintf(w, "EDKs:        %d\n", len(o.EDKs))
	for i, e := range o.EDKs {
		fmt.Fprintf(w, "  %d. provider %s, info %s, %d-byte ciphertext\n", i+1, strconv.Quote(e.ProviderID), showInfo(e.ProviderInfo), e.Ciphertext)
	}
}

// showInfo prints provider info as text when it is printable, with any
// binary tail (raw AES: tag length, IV length, IV) in hex.
func showInfo(b []byte) string {
	text := 0
	for text < len(b) {
		r, n := utf8.DecodeRune(b[text:])
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			break
		}
		text += n
	}
	switch {
	case text == len(b):
		return strconv.Quote(string(b))
	case text == 0:
		return "0x" + hex.EncodeToString(b) + " (base64 " + base64.StdEncoding.EncodeToString(b) + ")"
	}
	return strconv.Quote(string(b[:text])) + " + 0x" + hex.EncodeToString(b[text:])
}
