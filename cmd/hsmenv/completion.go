package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	"github.com/hsmenv/hsmenv/tpm"
)

// flagValues are the words a flag takes, with what each means, for the
// shells to complete.
var flagValues = []struct {
	path   []string // the command, under the root
	flag   string
	values []cobra.Completion
}{
	{[]string{"encrypt"}, "suite", suiteValues},
	{[]string{"bench"}, "suite", suiteValues},
	{[]string{"keygen"}, "type", []cobra.Completion{
		cobra.CompletionWithDesc(hsm.KeyAES256, "AES-256 (PKCS#11, default there)"),
		cobra.CompletionWithDesc(hsm.KeyRSA3072, "RSA-3072 (PKCS#11)"),
		cobra.CompletionWithDesc(hsm.KeyRSA2048, "RSA-2048 (PKCS#11; TPM key file, default there)"),
		cobra.CompletionWithDesc(hsm.KeyECP256, "EC P-256 for raw ECDH (PKCS#11; also TPM)"),
		cobra.CompletionWithDesc(hsm.KeyECP384, "EC P-384 for raw ECDH (PKCS#11)"),
		cobra.CompletionWithDesc(hsm.KeyECP521, "EC P-521 for raw ECDH (PKCS#11)"),
		cobra.CompletionWithDesc(tpm.KeyECCP256, "ECC P-256 (TPM key file)"),
		cobra.CompletionWithDesc("seal", "check the TPM for tpm:seal"),
	}},
	{[]string{"tpm", "ek"}, "type", []cobra.Completion{
		cobra.CompletionWithDesc("rsa", "RSA-2048 EK (default)"),
		cobra.CompletionWithDesc("ecc", "ECC P-256 EK"),
	}},
}

var suiteValues = []cobra.Completion{
	cobra.CompletionWithDesc(envelope.SuiteCommit.String(), "AES-256-GCM, key commitment (default)"),
	cobra.CompletionWithDesc(envelope.SuiteCommitECDSA.String(), "as 0478, plus an ECDSA P-384 signature"),
}

// addCompletions makes the shells complete the values of the flags that
// take one of a few words (--suite of encrypt and bench, --type of keygen
// and tpm ek) instead of file names. Commands and flags complete without
// it, through cobra's completion command. Call it on the root once the
// commands are added; a second call changes nothing.
func addCompletions(root *cobra.Command) {
	for _, fv := range flagValues {
		cmd, rest, err := root.Find(fv.path)
		if err != nil || len(rest) > 0 || cmd.Flags().Lookup(fv.flag) == nil {
			continue
		}
		if _, done := cmd.GetFlagCompletionFunc(fv.flag); done {
			continue
		}
		// Cannot fail: the flag exists and has no completion yet.
		_ = cmd.RegisterFlagCompletionFunc(fv.flag, completeFrom(fv.values))
	}
}

// completeFrom offers the values that start with what is typed.
func completeFrom(values []cobra.Completion) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, typed string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var match []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, typed) {
				match = append(match, v)
			}
		}
		return match, cobra.ShellCompDirectiveNoFileComp
	}
}
