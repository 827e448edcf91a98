package main

import (
	"crypto"
	"github.com/spf13/cobra"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/outfile"
	"github.com/hsmenv/hsmenv/resolver"
	"github.com/hsmenv/hsmenv/tpm"
)

// tpmSubcommands are added to `hsmenv tpm` (each file adds its own).
var tpmSubcommands = []func() *cobra.Command{newTPMEKCmd, newTPMSignPCRsCmd}

func newTPMCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tpm",
		Short: "TPM 2.0 device commands (endorsement key, policies, status)",
		Args:  cobra.NoArgs,
	}
	for _, sub := range tpmSubcommands {
		cmd.AddCommand(sub())
	}
	return cmd
}

// tpmDevice returns the --device value, else the default device.
func tpmDevice(flag string) string {
	if flag != "" {
		return flag
	}
	if d := keyOptions().TPMDevice; d != "" {
		return d
	}
	return tpm.DefaultDevice
}

func newTPMEKCmd() *cobra.Command {
	var device, out, keyType string
	var cert, force bool
	cmd := &cobra.Command{
		Use:   "ek [--device DEV] [--cert] [--type rsa|ecc] -o FILE",
		Short: "Export the TPM's endorsement key (or its certificate) as PEM, to seal data to it elsewhere",
		Long: `Export the TPM's endorsement key (EK), made from the TCG template (RSA-2048 by
default, --type ecc for ECC P-256), as a PEM public key; with --cert, the EK
certificate the manufacturer stored in the TPM's NV memory (checked to be for
this EK). On another machine, tpm:ek=FILE seals data keys to this TPM without
reaching it (add ;ca=CA.pem to verify the certificate first); on this device,
tpm:ek opens them.`,
		Example: `  hsmenv tpm ek --cert -o device42-ek.pem
  hsmenv encrypt --key 'tpm:ek=device42-ek.pem;ca=manufacturer-ca.pem' -o cred.enc cred.txt   # on the server
  hsmenv decrypt --key 'tpm:ek?device=/dev/tpmrm0' -o cred.txt cred.enc                         # on the device`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("tpm ek needs -o FILE (- for standard output)")
			}
			if keyType != "rsa" && keyType != "ecc" {
				return usagef("--type %q: rsa or ecc", keyType)
			}
			d, err := tpm.OpenDevice(tpmDevice(device))
			if err != nil {
				return err
			}
			defer d.Close()
			pem, err := d.EKPublicKeyPEM(cmd.Context(), keyType == "ecc", cert)
			if err != nil {
				return err
			}
			return outfile.WriteFile(out, force, pem)
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "the TPM: a path, tcp://HOST:PORT, unix:///PATH or a TCTI string (default $HSMENV_TPM_DEVICE, else $TPM2TOOLS_TCTI, else /dev/tpmrm0)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (- for standard output)")
	cmd.Flags().StringVar(&keyType, "type", "rsa", "EK type: rsa (RSA-2048) or ecc (ECC P-256)")
	cmd.Flags().BoolVar(&cert, "cert", false, "export the EK certificate from NV memory instead of the public key")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func newTPMSignPCRsCmd() *cobra.Command {
	var keyFile, pcrs, valuesFile, device, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "sign-pcrs --authority-key KEY.pem --pcrs sha256:0,7 (--pcr-values FILE | --device DEV) -o SIGNED.json",
		Short: "Approve a set of PCR values for data sealed to an authority (signed PCR policy)",
		Long: `Sign, with the authority's ECDSA P-256 private key, the values of the given
PCRs: data sealed with tpm:seal;authority=AUTH.pem (or tpm:ek=EK.pem;
authority=AUTH.pem) opens on a device whose PCRs hold the values of any
signed set it is given (signed-pcrs=FILE or a directory of them). After a
firmware or kernel update, sign the new values and ship the file: nothing is
sealed again. The values come from a file (INDEX=HEX lines, or tpm2_pcrread
output) or are read from a reference device (--device). The authority key is
a PEM file or, kept in an HSM, a pkcs11: URI of an EC P-256 key with
CKA_SIGN (the signature is made in the token).`,
		Example: `  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out authority.key
  openssl pkey -in authority.key -pubout -out authority.pem
  hsmenv tpm sign-pcrs --authority-key authority.key --pcrs sha256:0,4,7 --device /dev/tpmrm0 -o 2026-11.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if keyFile == "" || pcrs == "" || out == "" {
				return usagef("sign-pcrs needs --authority-key, --pcrs and -o")
			}
			if (valuesFile == "") == (device == "") {
				return usagef("sign-pcrs takes the values from --pcr-values FILE or --device DEV (one of them)")
			}
			var signer crypto.Signer
			if scheme, ok := keyuri.SchemeOf(keyFile); ok && scheme == hsm.Scheme {
				signer, err = resolver.OpenSigner(cmd.Context(), keyFile, keyOptions())
			} else {
				signer, err = tpm.ReadAuthorityPrivateKey(keyFile)
			}
			if err != nil {
				return err
			}
			idx, err := tpm.ParsePCRs(pcrs)
			if err != nil {
				return err
			}
			var values [][]byte
			if device != "" {
				d, err := tpm.OpenDevice(device)
				if err != nil {
					return err
				}
				defer d.Close()
				if values, err = d.PCRValues(cmd.Context(), idx); err != nil {
					return err
				}
			} else if values, err = tpm.ReadPCRValues(valuesFile, idx); err != nil {
				return err
			}
			signed, err := tpm.SignPCRs(signer, idx, values)
			if err != nil {
				return err
			}
			return outfile.WriteFile(out, force, signed)
		},
	}
	cmd.Flags().StringVar(&keyFile, "authority-key", "", "the authority's ECDSA P-256 private key: a PEM file, or a pkcs11: URI of a signing key in a token")
	cmd.Flags().StringVar(&pcrs, "pcrs", "", "the PCRs to approve, e.g. sha256:0,4,7")
	cmd.Flags().StringVar(&valuesFile, "pcr-values", "", "file of their values: INDEX=HEX lines or tpm2_pcrread output")
	cmd.Flags().StringVar(&device, "device", "", "read the values from this TPM instead")
	cmd.Flags().StringVarP(&out, "output", "o", "", "the signed policy file to write (- for standard output)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
