package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/hsmenv/hsmenv/internal/keyenv"
	"github.com/hsmenv/hsmenv/kmsplugin"
)

func newKMSPluginCmd() *cobra.Command {
	var listen string
	var keys, decryptKeys []string
	var healthInterval, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "kms-plugin --listen unix:///PATH.sock --key URI [--key URI]... [--decrypt-key URI]...",
		Short: "Serve the Kubernetes KMS v2 API (encryption of Secrets at rest) over hsmenv keys",
		Long: `Serve the Kubernetes KMS v2 API on a unix socket, for kube-apiserver's
EncryptionConfiguration (provider kms, apiVersion v2, endpoint unix:///PATH.sock).

Every --key wraps each data-key seed the apiserver sends, so any one of them
opens it (list the TPM or HSM key of every control-plane node: raw-ecdh
URIs with another node's public key wrap for it without its device). The
first --key is the primary: Status is "ok" only while a wrap and unwrap with
it succeeded within --health-interval. --decrypt-key keys only unwrap: to
rotate, put the new key first under --key and move the old one to
--decrypt-key. The key id is a hash of the --key set (their public keys, or
token and object labels), the same on every node with the same keys, and
changes when the set does, which makes the apiserver encrypt a new seed.

Each ciphertext is an hsmenv message (encryption context
kubernetes.io/kms-v2=seed): 'hsmenv decrypt --key URI' recovers a seed from
it without a cluster. A key set whose ciphertext would exceed the API's 1 KiB
is refused at start-up.

PINs come from pin-source in the URIs or $HSMENV_PKCS11_PIN / $HSMENV_TPM_PIN
(no prompt). The socket is made with mode 0600 and removed on exit; a stale
socket of a crashed plugin is replaced. One JSON line per call goes to
standard error (method, key_id, latency, outcome). SIGTERM or SIGINT stops it
gracefully (calls in flight finish) with exit status 0.`,
		Example: `  hsmenv kms-plugin --listen unix:///var/run/hsmenv/kms.sock \
      --key 'tpm:key-file=/etc/hsmenv/kms-node1.key?device=/dev/tpmrm0' \
      --key 'raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=/etc/hsmenv/kms-node2.pem'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(keys) == 0 {
				return usagef("kms-plugin needs --key URI")
			}
			path, err := kmsplugin.SocketPath(listen)
			if err != nil {
				return usageError{err}
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			ctx := cmd.Context()
			p, err := kmsplugin.New(ctx, kmsplugin.Config{
				Keys:           keys,
				DecryptKeys:    decryptKeys,
				Resolver:       keyenv.Options(nil),
				HealthInterval: healthInterval,
				Timeout:        timeout,
				Logger:         log,
			})
			if err != nil {
				return err
			}
			err = p.Serve(ctx, path, func() {
				log.Info("listening", "socket", path, "key_id", p.KeyID(), "keys", len(keys), "decrypt_keys", len(decryptKeys))
				if err := p.Health(ctx); err != nil {
					log.Warn("unhealthy", "key_id", p.KeyID(), "reason", err.Error())
				}
			})
			if err != nil {
				return err
			}
			// SIGTERM or SIGINT is how a service is asked to stop: a
			// graceful stop is a clean exit (status 0), so systemd and the
			// kubelet see no failure.
			log.Info("stopped", "socket", path, "reason", context.Cause(ctx).Error())
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "unix:///PATH.sock to serve on")
	cmd.Flags().StringArrayVar(&keys, "key", nil, "URI of a key that wraps each seed (repeatable; the first is the primary)")
	cmd.Flags().StringArrayVar(&decryptKeys, "decrypt-key", nil, "URI of a key that only unwraps (repeatable)")
	cmd.Flags().DurationVar(&healthInterval, "health-interval", 10*time.Second, "how long a successful health check (wrap and unwrap with the primary key) is trusted")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "bound on each call's device work")
	cmd.AddCommand(newKMSRecoverCmd())
	return cmd
}

// maxStoredValue bounds the etcd value recover reads.
const maxStoredValue = 64 << 20

func newKMSRecoverCmd() *cobra.Command {
	var keys []string
	var etcdKey, outTo string
	var force bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "recover --key URI [--key URI]... --etcd-key KEY [-o OUT] IN",
		Short: "Decrypt a value kube-apiserver stored in etcd, without a cluster",
		Long: `Decrypt one value that kube-apiserver stored in etcd with this KMS v2 plugin
(it starts with k8s:enc:kms:v2:NAME:), given any key that wrapped its seed and
the object's etcd key (e.g. /registry/secrets/NAMESPACE/NAME), which the
apiserver binds to the data. The seed is opened as the plugin would, the data
key derived as the apiserver does (HKDF-SHA256, AES-256-GCM), and the object's
storage encoding written out (Kubernetes protobuf, starting "k8s\x00", for
Secrets). IN is a file holding the raw etcd value (- for stdin), e.g. from
'etcdctl get --print-value-only KEY > value.bin'.`,
		Example: `  etcdctl get --print-value-only /registry/secrets/default/db > db.bin
  hsmenv kms-plugin recover --key "$RECOVERY_KEY" --etcd-key /registry/secrets/default/db -o db.pb db.bin`,
		Args: oneInput,
		RunE: func(cmd *cobra.Command, args []string) error {
			if etcdKey == "" {
				return usagef("recover needs --etcd-key, the object's key in etcd (/registry/secrets/NAMESPACE/NAME)")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			kr, err := openKeyring(ctx, keys)
			if err != nil {
				return err
			}
			in, out, err := openFiles(args[0], outTo, force)
			if err != nil {
				return err
			}
			defer in.Close()
			defer out.Abort()
			stored, err := io.ReadAll(io.LimitReader(in, maxStoredValue+1))
			if err != nil {
				return err
			}
			if len(stored) > maxStoredValue {
				return fmt.Errorf("%s: more than %d bytes: not one etcd value", args[0], maxStoredValue)
			}
			pt, err := kmsplugin.Recover(ctx, stored, etcdKey, kr)
			if err != nil {
				return err
			}
			if _, err := out.Write(pt); err != nil {
				return err
			}
			return out.Commit()
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "URI of a key that wrapped the seed (repeatable; any one opens it)")
	cmd.Flags().StringVar(&etcdKey, "etcd-key", "", "the object's key in etcd, e.g. /registry/secrets/default/db")
	cmd.Flags().StringVarP(&outTo, "output", "o", "", "output file (default stdout)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up when the keys' devices have not answered by then")
	return cmd
}
