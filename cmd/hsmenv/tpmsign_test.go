package main_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// hsmenv tpm sign-pcrs: a file sealed to an authority opens with the set
// it signed from the device; after PCR 16 changes, with the set it signs
// from a values file; bad calls are refused.
func TestTPMSignPCRsCommand(t *testing.T) {
	sw := tpmtest.Start(t)
	dev := sw.Device()
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	keyFile := filepath.Join(dir, "authority.key")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pubFile := filepath.Join(dir, "authority.pem")
	os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
	approved := filepath.Join(dir, "approved")
	os.Mkdir(approved, 0o755)

	in := filepath.Join(dir, "secret")
	os.WriteFile(in, []byte("fleet credential"), 0o600)
	enc := filepath.Join(dir, "secret.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", "tpm:seal;authority="+pubFile+"?device="+dev, "-o", enc, in))
	ok(t, run(t, nil, nil, "tpm", "sign-pcrs", "--authority-key", keyFile, "--pcrs", "sha256:16", "--device", dev, "-o", filepath.Join(approved, "1.json")))
	open := "tpm:seal?device=" + dev + "&signed-pcrs=" + approved
	if r := ok(t, run(t, nil, nil, "decrypt", "--key", open, "-o", "-", enc)); string(r.stdout) != "fleet credential" {
		t.Fatalf("decrypted %q", r.stdout)
	}
	d := extendPCR16(t, sw)
	fails(t, run(t, nil, nil, "decrypt", "--key", open, "-o", "-", enc), "no signed PCR policy matches")
	values := filepath.Join(dir, "values.txt")
	os.WriteFile(values, []byte("16="+d+"\n"), 0o644)
	ok(t, run(t, nil, nil, "tpm", "sign-pcrs", "--authority-key", keyFile, "--pcrs", "sha256:16", "--pcr-values", values, "-o", filepath.Join(approved, "2.json")))
	if r := ok(t, run(t, nil, nil, "decrypt", "--key", open, "-o", "-", enc)); string(r.stdout) != "fleet credential" {
		t.Fatalf("after signing the new value: %q", r.stdout)
	}
	// The authority key in a token: signed there, the same file format.
	tool := softhsmtest.Require(t, "OpenSC (pkcs11-tool)", "pkcs11-tool")
	tok := softhsmtest.New(t, softhsmtest.Options{})
	gen := exec.Command(tool, "--module", tok.Module, "--token-label", tok.Label, "--login", "--pin", tok.PIN,
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "authority", "--usage-sign")
	gen.Env = append(os.Environ(), tok.Env()...)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	hsmAuthority := tok.URI("authority")
	hsmPub := filepath.Join(dir, "hsm-authority.pem")
	pubOut := ok(t, run(t, nil, tok.Env(), "pubkey", "--key", hsmAuthority))
	if err := os.WriteFile(hsmPub, pubOut.stdout, 0o644); err != nil {
		t.Fatal(err)
	}
	enc2 := filepath.Join(dir, "secret2.enc")
	ok(t, run(t, nil, nil, "encrypt", "--key", "tpm:seal;authority="+hsmPub+"?device="+dev, "-o", enc2, in))
	hsmApproved := filepath.Join(dir, "hsm-approved.json")
	ok(t, run(t, nil, tok.Env(), "tpm", "sign-pcrs", "--authority-key", hsmAuthority, "--pcrs", "sha256:16", "--device", dev, "-o", hsmApproved))
	if r := ok(t, run(t, nil, nil, "decrypt", "--key", "tpm:seal?device="+dev+"&signed-pcrs="+hsmApproved, "-o", "-", enc2)); string(r.stdout) != "fleet credential" {
		t.Fatalf("signed in the token: %q", r.stdout)
	}
	fails(t, run(t, nil, nil, "tpm", "sign-pcrs", "--authority-key", keyFile, "--pcrs", "sha256:16", "-o", filepath.Join(dir, "x.json")), "--pcr-values FILE or --device")
	fails(t, run(t, nil, nil, "tpm", "sign-pcrs", "--authority-key", pubFile, "--pcrs", "sha256:16", "--device", dev, "-o", filepath.Join(dir, "y.json")), "private key")
}

// extendPCR16 extends PCR 16 of sw (as a kernel update would change a
// boot PCR) and returns its new SHA-256 value in hex.
func extendPCR16(t *testing.T, sw *tpmtest.SWTPM) string {
	t.Helper()
	tp, err := sw.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	_, err = (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(16), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: make([]byte, 32)}}},
	}).Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := (tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(16)}}}}).Execute(tp)
	if err != nil || len(rsp.PCRValues.Digests) != 1 {
		t.Fatalf("reading PCR 16: %v", err)
	}
	return hex.EncodeToString(rsp.PCRValues.Digests[0].Buffer)
}
