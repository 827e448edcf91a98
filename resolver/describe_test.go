package resolver

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/tpm"
)

// The TPM KEKs say how they wrap (the PKCS#11 ones: hsm's tests; the
// software ones: TestDescribeSoftware).
var (
	_ WrapInfo = (*tpm.SealKEK)(nil)
	_ WrapInfo = (*tpm.KeyKEK)(nil)
	_ WrapInfo = (*tpm.EKKEK)(nil)
)

// Kinds names every scheme, the tpm one by its forms.
func TestKinds(t *testing.T) {
	got := Kinds()
	for _, want := range []string{"pkcs11", "raw-aes", "raw-ecdh", "raw-rsa", "tpm:seal", "tpm:key-file", "tpm:ek"} {
		if !slices.Contains(got, want) {
			t.Errorf("Kinds() = %v, without %s", got, want)
		}
	}
	if slices.Contains(got, "tpm") {
		t.Errorf("Kinds() = %v: tpm is listed by its forms", got)
	}
}

type plainKEK struct{ envelope.KEK }

func TestDescribeUnknown(t *testing.T) {
	if m, l, u := Describe(plainKEK{}); m != "mechanism not known" || l != "" || !u {
		t.Errorf("Describe of a caller's KEK = %q, %q, %v", m, l, u)
	}
}

// The software KEKs say how they wrap, and which of them cannot unwrap.
func TestDescribeSoftware(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	privPEM := filepath.Join(dir, "ec.pem")
	os.WriteFile(privPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	der, _ = x509.MarshalPKIXPublicKey(priv.PublicKey())
	pubPEM := filepath.Join(dir, "ec.pub")
	os.WriteFile(pubPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	for _, c := range []struct {
		uri, mech, layout string
		unwraps           bool
	}{
		{"raw-aes:namespace=t;name=k?key-file=testdata/keys/aes256.key", "AES-GCM on the host", "ESDK raw AES", true},
		{"raw-rsa:namespace=t;name=k;padding=oaep-sha256?public-key=testdata/keys/rsa2048.pub&private-key=testdata/keys/rsa2048.pem", "RSA-OAEP-SHA256 on the host", "ESDK raw RSA", true},
		{"raw-rsa:namespace=t;name=k;padding=pkcs1?public-key=testdata/keys/rsa2048.pub", "RSA-PKCS1-v1_5 on the host", "ESDK raw RSA", false},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + pubPEM, "ECDH P-256 on the host, ephemeral schema", "ESDK raw ECDH", false},
		{"raw-ecdh:curve=p256;schema=discovery?recipient-private-key=" + privPEM, "ECDH P-256 on the host, discovery schema", "ESDK raw ECDH", true},
	} {
		kek, err := OpenKEK(t.Context(), c.uri, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := kek.(WrapInfo); !ok {
			t.Errorf("%s: no WrapInfo", c.uri)
		}
		if m, l, u := Describe(kek); m != c.mech || l != c.layout || u != c.unwraps {
			t.Errorf("%s: Describe = %q, %q, %v; want %q, %q, %v", c.uri, m, l, u, c.mech, c.layout, c.unwraps)
		}
	}
}
