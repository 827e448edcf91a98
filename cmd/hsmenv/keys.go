package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/hsmenv/hsmenv/tpm"
	"github.com/spf13/cobra"
)

func newKeygenCmd() *cobra.Command {
	var key, typ string
	cmd := &cobra.Command{
		Use:   "keygen --key URI [--type aes-256|rsa-3072|rsa-2048|ec-p256|ec-p384|ec-p521|ecc-p256|seal]",
		Short: "Generate a non-extractable KEK in a device",
		Long: `Generate a KEK inside the device the URI names, labelled by its object=.
AES keys get only the usage flags of the mechanism the token will use
(AES-GCM: encrypt/decrypt; key wrap: wrap/unwrap); RSA private keys only
decrypt; EC private keys (ec-p256, ec-p384, ec-p521) only derive, for the
ESDK raw ECDH layout. Keys are sensitive and never extractable, which is
read back and checked. For a tpm:key-file=PATH URI it makes an RSA-2048 or ECC P-256 key
under the TPM's storage root key and saves it to PATH (wrapping then needs
only the public key, on any machine); for tpm:seal it checks the TPM.`,
		Example: `  hsmenv keygen --type rsa-2048 --key 'tpm:key-file=/etc/hsmenv/tpm-kek.key?device=/dev/tpmrm0'
  hsmenv keygen --type aes-256 \
      --key 'pkcs11:token=prod;object=kek-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/hsmenv/pin'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				return usagef("keygen needs --key URI")
			}
			if !cmd.Flags().Changed("type") {
				typ = defaultKeyType(key)
			}
			msg, err := resolver.GenerateKey(cmd.Context(), key, typ, keyOptions())
			if err != nil {
				return err
			}
			fmt.Println(msg)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "URI of the key to create")
	cmd.Flags().StringVar(&typ, "type", "", "key type; pkcs11: aes-256 (default), rsa-3072, rsa-2048, ec-p256, ec-p384, ec-p521; tpm:key-file=: rsa-2048 (default), ecc-p256 (or ec-p256); tpm:seal: seal (default)")
	return cmd
}

// defaultKeyType is the key type keygen makes without --type: AES-256 in a
// PKCS#11 token, RSA-2048 (ESDK-compatible) in a TPM key file, seal for
// tpm:seal (the --type help says the same).
func defaultKeyType(uri string) string {
	if scheme, _ := keyuri.SchemeOf(uri); scheme != tpm.Scheme {
		return "aes-256"
	}
	if u, err := tpm.ParseURI(uri); err == nil && u.Seal {
		return "seal"
	}
	return "rsa-2048" // a bad URI fails in GenerateKey, with its own error
}

func newKeysCmd() *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "Key management: keys list URI"}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list [--json] URI",
		Short:   "List the keys of a token (object= and id= filter)",
		Example: `  hsmenv keys list 'pkcs11:token=prod?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/hsmenv/pin'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("keys list takes one URI")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := resolver.ListKeys(cmd.Context(), args[0], keyOptions())
			if err != nil {
				return err
			}
			if asJSON {
				if ks == nil {
					ks = []hsm.KeyInfo{}
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ks)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "LABEL\tID\tCLASS\tTYPE\tSENSITIVE\tEXTRACTABLE\tUSAGE")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s-%d\t%v\t%v\t%s\n", k.Label, hex.EncodeToString(k.ID), k.Class, k.Type, k.Bits, k.Sensitive, k.Extractable, strings.Join(k.Usage, ","))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	keys.AddCommand(list)
	return keys
}

func newPubkeyCmd() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "pubkey --key URI",
		Short: "Print the PEM public key of an RSA or EC KEK, for producers without the device",
		Long: `Print the SPKI PEM ("PUBLIC KEY") of an asymmetric KEK: an RSA key or an EC
key on P-256, P-384 or P-521 in a PKCS#11 token, a TPM key file
(tpm:key-file=, rsa-2048 or ecc-p256; no TPM needed), or a raw-rsa or
raw-ecdh key. Any ESDK raw RSA keyring holding an RSA one (with namespace
"hsmenv", the key's label as name, and the token's padding), or any ESDK 4.x
raw ECDH keyring holding an EC one (ephemeral schema, its curve), encrypts
messages that the device opens. AES keys and tpm:seal have no public key.`,
		Example: `  hsmenv pubkey --key 'pkcs11:token=prod;object=kek-rsa?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/hsmenv/pin' > kek.pub.pem
  hsmenv pubkey --key 'tpm:key-file=/etc/hsmenv/tpm-kek.key' > tpm-kek.pub.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				return usagef("pubkey needs --key URI")
			}
			pem, err := resolver.PublicKeyPEM(cmd.Context(), key, keyOptions())
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(pem)
			return err
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "URI of the RSA or EC key")
	return cmd
}
