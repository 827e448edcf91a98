package main

import (
	"github.com/spf13/cobra"

	"github.com/hsmenv/hsmenv/internal/outfile"
	"github.com/hsmenv/hsmenv/tpm"
)

// tpmSubcommands are added to `hsmenv tpm` (each file adds its own).
var tpmSubcommands = []func() *cobra.Command{newTPMEKCmd}

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
			f, err := outfile.Create(out, force, "")
			if err != nil {
				return err
			}
			defer f.Abort()
			if _, err := f.Write(pem); err != nil {
				return err
			}
			return f.Commit()
		},
	}
	cmd.Flags().StringVar(&device, "device", "", "the TPM (default $HSMENV_TPM_DEVICE, else /dev/tpmrm0)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (- for standard output)")
	cmd.Flags().StringVar(&keyType, "type", "rsa", "EK type: rsa (RSA-2048) or ecc (ECC P-256)")
	cmd.Flags().BoolVar(&cert, "cert", false, "export the EK certificate from NV memory instead of the public key")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
