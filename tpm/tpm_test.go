package tpm_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// TestRoundTrips encrypts and decrypts through the envelope with every kind
// of TPM KEK and policy.
func TestRoundTrips(t *testing.T) {
	_, d := startTPM(t)
	dev := d.Path()
	dir := t.TempDir()
	pin := pinFile(t, "correct horse")
	cases := []struct{ name, uri string }{
		{"seal", "tpm:seal?device=" + dev},
		{"seal-pcr", "tpm:seal;pcrs=sha256:0,7,16?device=" + dev},
		{"seal-pin", "tpm:seal;pin=yes?device=" + dev + pin},
		{"seal-pcr-pin", "tpm:seal;pcrs=16;pin=yes?device=" + dev + "&pin-value=1234"},
		{"rsa", keygen(t, dir, "rsa", tpm.KeyRSA2048, "", dev, "")},
		{"rsa-pcr-pin", keygen(t, dir, "rsa-pp", tpm.KeyRSA2048, ";pcrs=sha256:16;pin=yes", dev, pin)},
		{"ecc", keygen(t, dir, "ecc", tpm.KeyECCP256, "", dev, "")},
		{"ecc-pcr-pin", keygen(t, dir, "ecc-pp", tpm.KeyECCP256, ";pcrs=sha256:16;pin=yes", dev, pin)},
	}
	before := handles(t, d)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			roundTrip(t, open(t, c.uri))
		})
	}
	if after := handles(t, d); after != before {
		t.Fatalf("handles before %+v, after %+v", before, after)
	}
}

// TestTPMAndRawAES: a message with a TPM EDK and a raw AES EDK opens with
// either KEK alone.
func TestTPMAndRawAES(t *testing.T) {
	_, d := startTPM(t)
	key := make([]byte, 32)
	rand.Read(key)
	aes, err := rawaes.New("recovery", "offline-key", key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, uri := range []string{
		"tpm:seal;pcrs=16?device=" + d.Path(),
		keygen(t, dir, "ecc", tpm.KeyECCP256, "", d.Path(), ""),
		keygen(t, dir, "rsa", tpm.KeyRSA2048, "", d.Path(), ""),
	} {
		kek := open(t, uri)
		pt, msg := encrypt(t, kek, aes)
		h, err := envelope.ParseHeader(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if len(h.EDKs) != 2 {
			t.Fatalf("%d EDKs", len(h.EDKs))
		}
		if err := decrypt(t, pt, msg, kek); err != nil {
			t.Fatalf("%s alone: %v", kek, err)
		}
		if err := decrypt(t, pt, msg, aes); err != nil {
			t.Fatalf("raw AES alone: %v", err)
		}
	}
}

// closedPort returns a device string on which nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

// TestEncryptWithoutTPM: key files wrap with their public key while no TPM
// is reachable; the TPM opens the result later. The PEM SPKI lets an ESDK
// raw RSA keyring (namespace hsmenv, the key name, OAEP-SHA256), or for ECC
// keys a raw ECDH keyring (ephemeral key schema, P-256), produce EDKs the
// TPM opens.
func TestEncryptWithoutTPM(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	nowhere := closedPort(t)
	for _, typ := range []string{tpm.KeyRSA2048, tpm.KeyECCP256} {
		t.Run(typ, func(t *testing.T) {
			uri := keygen(t, dir, "k-"+typ, typ, "", d.Path(), "")
			offline := strings.Replace(uri, d.Path(), nowhere, 1)
			kek := open(t, offline)
			pt, msg := encrypt(t, kek)
			err := decrypt(t, pt, msg, kek)
			if !errors.Is(err, tpm.ErrDevice) {
				t.Fatalf("decrypt without the TPM: %v, want ErrDevice", err)
			}
			t.Logf("no TPM: %v", err)
			if err := decrypt(t, pt, msg, open(t, uri)); err != nil {
				t.Fatalf("decrypt with the TPM: %v", err)
			}
			pemBytes, err := tpm.PublicKeyPEM(ctx, offline)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(pemBytes)
			if block == nil || block.Type != "PUBLIC KEY" {
				t.Fatalf("PublicKeyPEM: %q", pemBytes)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			// An ESDK producer with only the public key.
			var esdk envelope.KEK
			if typ == tpm.KeyRSA2048 {
				if esdk, err = rawrsa.New(tpm.DefaultNamespace, "k-"+typ, pub.(*rsa.PublicKey), nil, rawrsa.OAEPSHA256); err != nil {
					t.Fatal(err)
				}
			} else {
				ecPub, err := rawecdh.ParsePublicKeyPEM(pemBytes)
				if err != nil {
					t.Fatal(err)
				}
				if !ecPub.Equal(kek.(*tpm.KeyKEK).PublicKey()) {
					t.Fatal("PublicKeyPEM is not the key file's public key")
				}
				esdk = rawecdh.NewEphemeral(ecPub)
			}
			pt, msg = encrypt(t, esdk)
			if err := decrypt(t, pt, msg, open(t, uri)); err != nil {
				t.Fatalf("TPM opening an ESDK %s message: %v", typ, err)
			}
		})
	}
}

// TestNamesAndNamespaces: EDK names follow the key file's base name, x-name
// and x-namespace override them.
func TestNamesAndNamespaces(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	uri := keygen(t, dir, "backup", tpm.KeyRSA2048, "", d.Path(), "")
	k := open(t, uri).(*tpm.KeyKEK)
	if k.Name() != "backup" || k.Namespace() != "hsmenv" {
		t.Fatalf("name %q namespace %q", k.Name(), k.Namespace())
	}
	edk, err := k.Wrap(ctx, make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	if edk.ProviderID != "hsmenv" || string(edk.ProviderInfo) != "backup" {
		t.Fatalf("EDK %q/%q", edk.ProviderID, edk.ProviderInfo)
	}
	other := open(t, strings.Replace(uri, "?", ";x-namespace=acme;x-name=vault?", 1)).(*tpm.KeyKEK)
	if other.Claims(edk) {
		t.Fatal("a renamed KEK claims the EDK")
	}
	edk2, _ := other.Wrap(ctx, make([]byte, 32), nil)
	if edk2.ProviderID != "acme" || string(edk2.ProviderInfo) != "vault" {
		t.Fatalf("EDK %q/%q", edk2.ProviderID, edk2.ProviderInfo)
	}
	if _, err := other.Unwrap(ctx, edk2, nil); err != nil {
		t.Fatal(err)
	}
	ecc := keygen(t, dir, "edge", tpm.KeyECCP256, "", d.Path(), "")
	e := open(t, ecc).(*tpm.KeyKEK)
	edk3, _ := e.Wrap(ctx, make([]byte, 32), nil)
	if edk3.ProviderID != rawecdh.ProviderID || e.Namespace() != rawecdh.ProviderID || !e.Claims(edk3) || k.Claims(edk3) {
		t.Fatalf("ECDH EDK %q, namespace %q", edk3.ProviderID, e.Namespace())
	}
	if _, err := tpm.OpenURI(ctx, strings.Replace(ecc, "?", ";x-namespace=acme?", 1)); err == nil {
		t.Fatal("x-namespace accepted for an ECC key")
	}
}

// TestKeyFiles: format checks, no overwrite, PCR/PIN consistency, seal has
// no public key.
func TestKeyFiles(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	uri := keygen(t, dir, "k", tpm.KeyECCP256, ";pcrs=16", d.Path(), "")
	path := filepath.Join(dir, "k.tpmkey")
	if _, err := tpm.Generate(ctx, uri, tpm.KeyECCP256); !errors.Is(err, tpm.ErrKeyFile) || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("overwrite: %v", err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte("BEGIN HSMENV TPM KEY")) || !bytes.Contains(b, []byte("PCRs: sha256:16")) || !bytes.Contains(b, []byte("BEGIN PUBLIC KEY")) {
		t.Fatalf("key file:\n%s", b)
	}
	if _, err := tpm.OpenURI(ctx, "tpm:key-file="+path+";pcrs=0?device="+d.Path()); !errors.Is(err, tpm.ErrKeyFile) {
		t.Fatalf("pcrs mismatch: %v", err)
	}
	if _, err := tpm.OpenURI(ctx, "tpm:key-file="+path+";pin=yes?device="+d.Path()); !errors.Is(err, tpm.ErrKeyFile) {
		t.Fatalf("pin mismatch: %v", err)
	}
	if _, err := tpm.Generate(ctx, "tpm:key-file="+filepath.Join(dir, "x")+"?device="+d.Path(), "aes-256"); !errors.Is(err, tpm.ErrKeyFile) {
		t.Fatalf("aes key type: %v", err)
	}
	if _, err := tpm.PublicKeyPEM(ctx, "tpm:seal?device="+d.Path()); err == nil {
		t.Fatal("seal has a public key?")
	}
	desc, err := tpm.Generate(ctx, "tpm:seal;pcrs=0,7?device="+d.Path(), "seal")
	if err != nil || !strings.Contains(desc, "needs no key") {
		t.Fatalf("keygen seal: %q %v", desc, err)
	}
	// Altered files are refused.
	for name, edit := range map[string]func(string) string{
		"version": func(s string) string { return strings.Replace(s, "Version: 1", "Version: 2", 1) },
		"pcrs":    func(s string) string { return strings.Replace(s, "PCRs: sha256:16", "PCRs: sha256:15", 1) },
		"pin":     func(s string) string { return strings.Replace(s, "PIN: no", "PIN: yes", 1) },
		"type":    func(s string) string { return strings.Replace(s, "Type: ecc-p256", "Type: rsa-2048", 1) },
		"header":  func(s string) string { return strings.Replace(s, "Version: 1", "Version: 1\nColor: red", 1) },
		"garbage": func(string) string {
			return "-----BEGIN HSMENV TPM KEY-----\nVersion: 1\nType: ecc-p256\nSRK-Name: 00\nPIN: no\n\nAAAA\n-----END HSMENV TPM KEY-----\n"
		},
	} {
		p := filepath.Join(dir, name+".tpmkey")
		os.WriteFile(p, []byte(edit(string(b))), 0o600)
		if _, err := tpm.OpenURI(ctx, "tpm:key-file="+p+"?device="+d.Path()); !errors.Is(err, tpm.ErrKeyFile) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestURIs: syntax errors and the redacted form.
func TestURIs(t *testing.T) {
	for _, bad := range []string{
		"tpm:",
		"tpm:seal;colour=red",
		"tpm:seal?device=/dev/tpmrm0&colour=red",
		"tpm:seal;key-file=/x",
		"tpm:sealed",
		"tpm:seal;pcrs=sha1:0",
		"tpm:seal;pcrs=sha256:24",
		"tpm:seal;pcrs=0,0",
		"tpm:seal;pin=maybe",
		"tpm:seal;x-name=foo",
		"tpm:seal?pin-value=1&pin-source=file:/x",
		"pkcs11:token=x",
	} {
		if _, err := tpm.ParseURI(bad); !errors.Is(err, keyuri.ErrSyntax) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := tpm.OpenURI(ctx, "tpm:seal?device=ftp://x"); !errors.Is(err, tpm.ErrDevice) {
		t.Errorf("ftp device: %v", err)
	}
	u, err := tpm.ParseURI("tpm:seal;pcrs=7,0;pin=yes?device=tcp://127.0.0.1:1&pin-value=secret")
	if err != nil {
		t.Fatal(err)
	}
	s := u.String()
	back, err := tpm.ParseURI(s)
	if err != nil || strings.Contains(s, "secret") || len(back.PCRs) != 2 || back.PCRs[1] != 7 || !back.PIN {
		t.Fatalf("String: %s (%v)", s, err)
	}
	// Without device= or WithDevice: DefaultDevice (not reached here),
	// whatever the environment says.
	t.Setenv("HSMENV_TPM_DEVICE", "tcp://127.0.0.1:9")
	k, err := tpm.OpenURI(ctx, "tpm:seal")
	if err != nil || !strings.HasSuffix(k.(*tpm.SealKEK).String(), "?device="+tpm.DefaultDevice) {
		t.Fatalf("default device: %v %v", k, err)
	}
}

// TestUnixSocket: swtpm on a unix socket, named unix:///PATH or by its
// path alone.
func TestUnixSocket(t *testing.T) {
	sw := tpmtest.StartUnix(t)
	for _, dev := range []string{sw.Device(), sw.Socket} {
		d, err := tpm.OpenDevice(dev)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, open(t, "tpm:seal;pcrs=0,7?device="+dev))
		d.Close() // swtpm serves one connection at a time
	}
	sw.Restart()
	roundTrip(t, open(t, "tpm:seal?device="+sw.Device()))
	d, _ := tpm.OpenDevice(sw.Device())
	d.Close()
}

// TestManyPINs: PINs of every length and alphabet work (their auth values
// must survive go-tpm's handling of zero bytes, google/go-tpm#446).
func TestManyPINs(t *testing.T) {
	_, d := startTPM(t)
	for i := 0; i < 40; i++ {
		pin := fmt.Sprintf("pin-%d-%s", i, strings.Repeat("ключ", i))
		kek := open(t, "tpm:seal;pin=yes?device="+d.Path()+"&pin-value="+url.PathEscape(pin))
		if err := unwrapOnce(kek); err != nil {
			t.Fatalf("PIN %q: %v", pin, err)
		}
	}
}
