package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// hsmenv tpm ek against an swtpm made by swtpm_setup --create-ek-cert:
// the EK and its RSA and ECC certificates exported; files encrypted with
// only the PEM files while the device is stopped (the certificate checked
// against the local CA's root), refused with another CA (same names, other
// keys) or a bare public key; decrypted on the device; another TPM refuses.
func TestTPMEKCommand(t *testing.T) {
	sw, ca := tpmtest.StartWithEKCert(t)
	other, otherCA := tpmtest.StartWithEKCert(t)
	dev := sw.Device()
	dir := t.TempDir()
	certFile := filepath.Join(dir, "ek-cert.pem")
	eccCertFile := filepath.Join(dir, "ek-ecc-cert.pem")
	pubFile := filepath.Join(dir, "ek.pem")
	ok(t, run(t, nil, nil, "tpm", "ek", "--device", dev, "--cert", "-o", certFile))
	ok(t, run(t, nil, nil, "tpm", "ek", "--device", dev, "--type", "ecc", "--cert", "-o", eccCertFile))
	ok(t, run(t, nil, nil, "tpm", "ek", "--device", dev, "-o", pubFile))
	for file, typ := range map[string]string{certFile: "CERTIFICATE", eccCertFile: "CERTIFICATE", pubFile: "PUBLIC KEY"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if blk, rest := pem.Decode(b); blk == nil || blk.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("%s: want one PEM %s, got:\n%s", filepath.Base(file), typ, b)
		}
	}
	// The default device from the environment, standard output.
	cert, _ := os.ReadFile(certFile)
	if r := ok(t, run(t, nil, []string{"HSMENV_TPM_DEVICE=" + dev}, "tpm", "ek", "--cert", "-o", "-")); !bytes.Equal(r.stdout, cert) {
		t.Fatalf("tpm ek --cert -o - differs from the file:\n%s", r.stdout)
	}
	fails(t, run(t, nil, nil, "tpm", "ek", "--device", dev, "--cert", "-o", certFile), "exists")
	fails(t, run(t, nil, nil, "tpm", "ek", "--device", dev, "--type", "dsa", "-o", filepath.Join(dir, "x")), "--type")
	fails(t, run(t, nil, nil, "tpm", "ek", "--device", dev), "-o FILE")
	// The EK certificate, then the local CA's intermediate.
	chain := func(name, certFile string, ca tpmtest.EKCA) string {
		c, _ := os.ReadFile(certFile)
		b, err := ca.ChainPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	rsaChain := chain("ek-chain.pem", certFile, ca)
	eccChain := chain("ek-ecc-chain.pem", eccCertFile, ca)

	sw.Stop() // the encrypting side has no TPM
	pt := make([]byte, 100_000)
	rand.Read(pt)
	in := filepath.Join(dir, "cred")
	os.WriteFile(in, pt, 0o600)
	rsaEnc, eccEnc := filepath.Join(dir, "cred.rsa.enc"), filepath.Join(dir, "cred.ecc.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", "tpm:ek="+rsaChain+";ca="+ca.Root, "-o", rsaEnc, in))
	ok(t, run(t, nil, nil, "encrypt", "--key", "tpm:ek="+eccChain+";ca="+ca.Root, "-o", eccEnc, in))
	if r := ok(t, run(t, nil, nil, "inspect", rsaEnc)); !bytes.Contains(r.stdout, []byte("hsmenv-tpm-ek")) {
		t.Fatalf("inspect:\n%s", r.stdout)
	}
	refused := filepath.Join(dir, "refused.enc")
	for _, c := range []struct{ key, want string }{
		{"tpm:ek=" + rsaChain + ";ca=" + otherCA.Root, "does not chain to a CA in"},
		{"tpm:ek=" + certFile + ";ca=" + ca.Root, "does not chain to a CA in"}, // the intermediate missing
		{"tpm:ek=" + pubFile + ";ca=" + ca.Root, "holds only a public key"},
	} {
		r := run(t, nil, nil, "encrypt", "--key", c.key, "-o", refused, in)
		fails(t, r, c.want)
		if c.want == "does not chain to a CA in" {
			ekFile, caFile, _ := strings.Cut(strings.TrimPrefix(c.key, "tpm:ek="), ";ca=")
			if !bytes.Contains(r.stderr, []byte(ekFile)) || !bytes.Contains(r.stderr, []byte(caFile)) {
				t.Errorf("%s: the error does not name both files: %s", c.key, r.stderr)
			}
		}
		if _, err := os.Stat(refused); err == nil {
			t.Fatalf("%s: a refused encrypt left output", c.key)
		}
	}

	sw.Restart()
	for _, enc := range []string{rsaEnc, eccEnc} {
		if r := ok(t, run(t, nil, nil, "decrypt", "--key", "tpm:ek?device="+dev, enc)); !bytes.Equal(r.stdout, pt) {
			t.Fatalf("decrypt %s differs", filepath.Base(enc))
		}
	}
	out := filepath.Join(dir, "out")
	fails(t, run(t, nil, nil, "decrypt", "--key", "tpm:ek?device="+other.Device(), "-o", out, rsaEnc), "sealed to another TPM (EK name")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused decrypt left output")
	}
}
