package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyenv"
	"github.com/spf13/cobra"
)

func newTokensCmd() *cobra.Command {
	var (
		module           string
		asJSON, withMech bool
	)
	cmd := &cobra.Command{
		Use:   "tokens [--module SO] [--mechanisms] [--json]",
		Short: "List the slots and tokens of a PKCS#11 module, and what hsmenv can do with each",
		Long: `List every slot of a PKCS#11 module with its token: label, manufacturer,
model, serial number, flags (initialized, login-required, user-pin-locked,
user-pin-final-try, user-pin-count-low, write-protected, ...), the vendor
profile hsmenv selects, and the pkcs11: URI prefix that names it (add
;object=LABEL and a PIN source for a key URI). No PIN is needed.

With --mechanisms, also what hsmenv can use on each token, by the rules it
opens keys and generates them with: the KEK mechanisms (x-mechanism names;
for AES keys the first is the default), the key types keygen can make, and
the PKCS#11 mechanisms hsmenv knows that the token lists, with their flags
(the vendor profile decides which are used: NSS lists AES-GCM, which hsmenv
does not use there).

The module is --module, else $HSMENV_PKCS11_MODULE.`,
		Example: `  hsmenv tokens --module /usr/lib/softhsm/libsofthsm2.so
  HSMENV_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so hsmenv tokens --mechanisms
  hsmenv tokens --json | jq -r '.[].token.uri // empty'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if module == "" {
				module = keyenv.Options(nil).PKCS11Module
			}
			if module == "" {
				return usagef("tokens needs a PKCS#11 module: give --module SO or set %s", keyenv.PKCS11Module)
			}
			slots, err := hsm.ListSlots(module, withMech)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(slots)
			}
			return printSlots(os.Stdout, module, slots)
		},
	}
	f := cmd.Flags()
	f.StringVar(&module, "module", "", "PKCS#11 module (default $"+keyenv.PKCS11Module+")")
	f.BoolVar(&withMech, "mechanisms", false, "also list what hsmenv can use on each token")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printSlots prints slots as `hsmenv tokens` does: one block per slot.
func printSlots(w io.Writer, module string, slots []hsm.SlotInfo) error {
	if len(slots) == 0 {
		_, err := fmt.Fprintf(w, "%s has no slots\n", module)
		return err
	}
	var b strings.Builder
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "  %-13s %s\n", name+":", value)
		}
	}
	for _, s := range slots {
		fmt.Fprintf(&b, "slot %d: %s\n", s.ID, s.Description)
		t := s.Token
		switch {
		case !s.TokenPresent:
			b.WriteString("  no token\n")
			continue
		case t == nil:
			b.WriteString("  token present, but the module does not describe it\n")
			continue
		case t.URI == "":
			field("token", "(not initialized)")
		default:
			field("token", fmt.Sprintf("%q", t.Label))
		}
		field("manufacturer", t.Manufacturer)
		field("model", t.Model)
		field("serial", t.Serial)
		field("flags", strings.Join(t.Flags, ", "))
		field("profile", t.Profile)
		field("uri", t.URI)
		if c := t.Capabilities; c != nil {
			field("keks", listOrNone(c.KEKs))
			field("keygen", listOrNone(c.Keygen))
			field("pkcs11", listOrNone(c.PKCS11))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
