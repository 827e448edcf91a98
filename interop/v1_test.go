package interop_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// Legacy v1 messages, written by the JS ESDK under FORBID_ENCRYPT_ALLOW_DECRYPT
// with every non-committing suite, are decrypted by hsmenv when the policy
// allows them, and refused under the default policy.
func TestJSLegacyV1Messages(t *testing.T) {
	needNode(t)
	ctx := context.Background()
	f := keys(t)
	aes := f.get(t, "aes256")
	kr := hsmKeyring(t, aes...)
	ec := envelope.EncryptionContext{"legacy": "yes"}
	for _, suite := range []string{"0014", "0046", "0078", "0114", "0146", "0178", "0214", "0346", "0378"} {
		t.Run(suite, func(t *testing.T) {
			pt := randBytes(10_001)
			spec := jsSpec{Keyrings: jsKeyrings(aes, true), Suite: suite, FrameLength: 4096, Context: ec, CommitmentPolicy: "FORBID_ENCRYPT_ALLOW_DECRYPT"}
			msg, _, err := runJS(t, "encrypt", spec, pt)
			if err != nil {
				t.Fatal(err)
			}
			got, h, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{Policy: envelope.RequireEncryptAllowDecrypt, RequiredContext: ec})
			if err != nil {
				t.Fatalf("v1 suite %s: %v", suite, err)
			}
			if !bytes.Equal(got, pt) || h.Version != 1 || h.Suite.String() != suite {
				t.Fatalf("v1 suite %s: version %d suite %v", suite, h.Version, h.Suite)
			}
			if _, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrCommitmentPolicy) {
				t.Fatalf("default policy accepted a v1 message: %v", err)
			}
			var out bytes.Buffer
			if _, err := envelope.DecryptAt(ctx, bytes.NewReader(msg), int64(len(msg)), &out, kr, envelope.DecryptOptions{Policy: envelope.RequireEncryptAllowDecrypt}); err != nil || !bytes.Equal(out.Bytes(), pt) {
				t.Fatalf("DecryptAt v1 %s: %v", suite, err)
			}
		})
	}
}
