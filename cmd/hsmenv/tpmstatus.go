package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/hsmenv/hsmenv/internal/pin"
	"github.com/hsmenv/hsmenv/internal/secretfile"
	"github.com/hsmenv/hsmenv/tpm"
	"github.com/spf13/cobra"
)

// tpmDeviceUsage describes --device of the tpm commands.
const tpmDeviceUsage = "the TPM: /dev/tpmrm0, tcp://HOST:PORT, unix:///PATH, or a TCTI string (swtpm:host=H,port=P, mssim:host=H,port=P, device:PATH); default $HSMENV_TPM_DEVICE, else $TPM2TOOLS_TCTI, else /dev/tpmrm0"

func init() {
	tpmSubcommands = append(tpmSubcommands, newTPMStatusCmd, newTPMResetLockoutCmd)
}

// openTPM opens the TPM of --device, else the environment's default
// ($HSMENV_TPM_DEVICE, else $TPM2TOOLS_TCTI, else /dev/tpmrm0).
func openTPM(dev string) (*tpm.Device, error) {
	return tpm.OpenDevice(tpmDevice(dev))
}

// tpmStatusJSON is the output of tpm status --json.
type tpmStatusJSON struct {
	Device           string `json:"device"`
	Manufacturer     string `json:"manufacturer"`
	ManufacturerID   uint32 `json:"manufacturer_id"`
	Vendor           string `json:"vendor"`
	FirmwareVersion  string `json:"firmware_version"`
	FirmwareVersion1 uint32 `json:"firmware_version_1"`
	FirmwareVersion2 uint32 `json:"firmware_version_2"`
	SRKName          string `json:"srk_name"`
	SRK              string `json:"srk"`
	LockoutCounter   uint32 `json:"lockout_counter"`
	MaxTries         uint32 `json:"max_tries"`
	TriesLeft        uint32 `json:"tries_left"`
	LockoutInterval  uint32 `json:"lockout_interval_seconds"`
	LockoutRecovery  uint32 `json:"lockout_recovery_seconds"`
	InLockout        bool   `json:"in_lockout"`
	LockoutAuthSet   bool   `json:"lockout_auth_set"`
}

func newTPMStatusCmd() *cobra.Command {
	var device string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--device DEV] [--json]",
		Short: "Show a TPM's maker, firmware, SRK name and dictionary-attack lockout state",
		Long: `Show the TPM's manufacturer (TPM_PT_MANUFACTURER) and firmware version
(TPM_PT_FIRMWARE_VERSION_1/2), the name of the storage root key hsmenv seals
under (verified against its public key, ready for srk=), and its
dictionary-attack state: failed authorizations (TPM_PT_LOCKOUT_COUNTER) out
of the maximum (TPM_PT_MAX_AUTH_FAIL), how often it forgets one
(TPM_PT_LOCKOUT_INTERVAL), how long the lockout hierarchy waits after a wrong
lockout authorization (TPM_PT_LOCKOUT_RECOVERY), and whether it is in lockout.
It sends no authorization: it never counts towards lockout.`,
		Example: `  hsmenv tpm status
  hsmenv tpm status --device swtpm:host=127.0.0.1,port=2321 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := openTPM(device)
			if err != nil {
				return err
			}
			defer d.Close()
			st, err := d.Status(cmd.Context())
			if err != nil {
				return err
			}
			srk := "template"
			if st.SRKPersistent {
				srk = "persistent"
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(tpmStatusJSON{
					Device: st.Device, Manufacturer: st.Manufacturer, ManufacturerID: st.ManufacturerID, Vendor: st.Vendor,
					FirmwareVersion: st.FirmwareVersion(), FirmwareVersion1: st.FirmwareVersion1, FirmwareVersion2: st.FirmwareVersion2,
					SRKName: hex.EncodeToString(st.SRKName), SRK: srk,
					LockoutCounter: st.LockoutCounter, MaxTries: st.MaxTries, TriesLeft: st.TriesLeft(),
					LockoutInterval: st.LockoutInterval, LockoutRecovery: st.LockoutRecovery,
					InLockout: st.InLockout, LockoutAuthSet: st.LockoutAuthSet,
				})
			}
			srkWhat := "made from the ECC P-256 template"
			if st.SRKPersistent {
				srkWhat = fmt.Sprintf("persistent at %#x", uint32(tpm.PersistentSRK))
			}
			inLockout := "no"
			if st.InLockout {
				inLockout = "YES: PIN-protected objects are refused (hsmenv tpm reset-lockout ends it)"
			}
			interval := fmt.Sprintf("one failure forgotten every %d s (TPM_PT_LOCKOUT_INTERVAL)", st.LockoutInterval)
			if st.LockoutInterval == 0 {
				interval = "0: failures are never forgotten by themselves (TPM_PT_LOCKOUT_INTERVAL)"
			}
			recovery := fmt.Sprintf("%d s after a wrong lockout authorization (TPM_PT_LOCKOUT_RECOVERY)", st.LockoutRecovery)
			if st.LockoutRecovery == 0 {
				recovery = "0: after a wrong lockout authorization, until the TPM restarts (TPM_PT_LOCKOUT_RECOVERY)"
			}
			lockoutAuth := "empty (reset-lockout --empty-auth)"
			if st.LockoutAuthSet {
				lockoutAuth = "set"
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "device\t%s\n", st.Device)
			fmt.Fprintf(tw, "manufacturer\t%s (0x%08x), vendor %q\n", st.Manufacturer, st.ManufacturerID, st.Vendor)
			fmt.Fprintf(tw, "firmware\t%s (TPM_PT_FIRMWARE_VERSION_1 0x%08x, _2 0x%08x)\n", st.FirmwareVersion(), st.FirmwareVersion1, st.FirmwareVersion2)
			fmt.Fprintf(tw, "SRK name\t%s (%s; pin it with srk=)\n", hex.EncodeToString(st.SRKName), srkWhat)
			fmt.Fprintf(tw, "lockout counter\t%d of %d failed authorizations (%d tries left)\n", st.LockoutCounter, st.MaxTries, st.TriesLeft())
			fmt.Fprintf(tw, "in lockout\t%s\n", inLockout)
			fmt.Fprintf(tw, "recovery time\t%s\n", interval)
			fmt.Fprintf(tw, "lockout recovery\t%s\n", recovery)
			fmt.Fprintf(tw, "lockout auth\t%s\n", lockoutAuth)
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&device, "device", "", tpmDeviceUsage)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTPMResetLockoutCmd() *cobra.Command {
	var device, authFile string
	var emptyAuth bool
	cmd := &cobra.Command{
		Use:   "reset-lockout [--device DEV] [--auth-file FILE | --empty-auth]",
		Short: "End a dictionary-attack lockout and zero the failure counter",
		Long: `Send TPM2_DictionaryAttackLockReset, authorized by the lockout hierarchy's
authorization value: PIN-protected objects work again at once and the
failure counter is 0. The value comes from --auth-file (its content as
tpm2_changeauth -c lockout was given it; a trailing newline is dropped), or
is asked for on the terminal without echo; it is never taken from the command
line. An empty value (a fresh TPM, swtpm) must be asked for with --empty-auth:
an empty file or answer is refused. A wrong value is refused by the TPM, which
then refuses the lockout hierarchy for TPM_PT_LOCKOUT_RECOVERY seconds (see
hsmenv tpm status).`,
		Example: `  hsmenv tpm reset-lockout --auth-file /etc/hsmenv/lockout-auth
  hsmenv tpm reset-lockout --device swtpm:host=127.0.0.1,port=2321 --empty-auth`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if authFile != "" && emptyAuth {
				return usagef("--auth-file and --empty-auth exclude each other")
			}
			d, err := openTPM(device)
			if err != nil {
				return err
			}
			defer d.Close()
			auth, err := lockoutAuth(d, authFile, emptyAuth)
			if err != nil {
				return err
			}
			defer clear(auth)
			if err := d.ResetLockout(cmd.Context(), auth); err != nil {
				return err
			}
			fmt.Printf("TPM %s: dictionary-attack lockout reset: failure counter 0, PIN-protected objects usable\n", d.Path())
			return nil
		},
	}
	cmd.Flags().StringVar(&device, "device", "", tpmDeviceUsage)
	cmd.Flags().StringVar(&authFile, "auth-file", "", "file holding the lockout authorization (default: ask on the terminal)")
	cmd.Flags().BoolVar(&emptyAuth, "empty-auth", false, "the lockout authorization is empty (a fresh TPM, swtpm)")
	return cmd
}

// lockoutAuth returns the lockout authorization: empty with --empty-auth,
// from --auth-file, else from a no-echo prompt. An empty file or answer is
// refused: only --empty-auth means empty.
func lockoutAuth(d *tpm.Device, file string, empty bool) ([]byte, error) {
	const useEmpty = "for an empty lockout authorization give --empty-auth"
	switch {
	case empty:
		return nil, nil
	case file != "":
		b, err := secretfile.Read(file, pin.MaxFile)
		if err != nil {
			return nil, fmt.Errorf("--auth-file: %w", err)
		}
		n := len(bytes.TrimRight(b, "\r\n"))
		if n == 0 {
			clear(b)
			return nil, fmt.Errorf("--auth-file %s is empty: %s", file, useEmpty)
		}
		clear(b[n:])
		return b[:n], nil
	}
	s, err := pin.Prompt("Lockout authorization for TPM " + d.Path())
	switch {
	case errors.Is(err, pin.ErrEmpty):
		return nil, errors.New("empty lockout authorization: " + useEmpty)
	case errors.Is(err, pin.ErrNoPIN):
		return nil, errors.New("no lockout authorization entered")
	case errors.Is(err, pin.ErrNoTerminal):
		return nil, errors.New("no terminal to ask for the lockout authorization on: give --auth-file FILE (or --empty-auth)")
	case err != nil:
		return nil, err
	}
	return []byte(s), nil
}
