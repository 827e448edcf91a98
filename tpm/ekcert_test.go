package tpm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// writeFile writes b to name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sealed is a tpm:ek= URI; pcr says it binds PCR 16.
type sealed struct {
	uri string
	pcr bool
}

// sealedEDK is what it sealed.
type sealedEDK struct {
	sealed
	edk envelope.EncryptedDataKey
}

// mustRead reads a file or fails the test.
func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An swtpm made by swtpm_setup --create-ek-cert against a throw-away local
// CA: the EK certificate exported from NV memory; data sealed from the
// certificate alone (the device stopped) once it chains to the CA's root,
// opened on the device; another CA with the same names, another TPM's
// certificate, a missing intermediate and a bare public key refused; a
// second TPM refuses the data; PCR 16 bound and refused after an extend.
func TestEKCertificate(t *testing.T) {
	sw, ca := tpmtest.StartWithEKCert(t)
	other, otherCA := tpmtest.StartWithEKCert(t) // a CA with the same names and other keys
	root := mustRead(t, ca.Root)
	if bytes.Equal(root, mustRead(t, otherCA.Root)) {
		t.Fatal("two local CAs with one root")
	}
	for _, ecc := range []bool{false, true} {
		name, index := "rsa", uint32(tpmtest.NVRSAEKCert)
		if ecc {
			name, index = "ecc", tpmtest.NVECCP256EKCert
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			d := openDevice(t, sw.Device())
			certPEM, err := d.EKPublicKeyPEM(ctx, ecc, true)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, err := d.EKPublicKeyPEM(ctx, ecc, false)
			if err != nil {
				t.Fatal(err)
			}
			pcr16, err := d.PCRValues(ctx, []int{16})
			if err != nil {
				t.Fatal(err)
			}
			d.Close()
			od := openDevice(t, other.Device())
			otherCertPEM, err := od.EKPublicKeyPEM(ctx, ecc, true)
			if err != nil {
				t.Fatal(err)
			}
			od.Close()

			// The certificate is the NV index's, for the exported key, and
			// has the critical SAN that Go's verifier does not handle.
			blk, rest := pem.Decode(certPEM)
			if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("EK certificate PEM:\n%s", certPEM)
			}
			nv, err := sw.ReadNV(index)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(blk.Bytes, nv) {
				t.Fatalf("exported certificate differs from NV %#x", index)
			}
			crt, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			pblk, _ := pem.Decode(pubPEM)
			pub, err := x509.ParsePKIXPublicKey(pblk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !crt.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Fatal("the certificate is not for the exported EK")
			}
			if len(crt.UnhandledCriticalExtensions) != 1 || !crt.UnhandledCriticalExtensions[0].Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
				t.Fatalf("swtpm's EK certificate: unhandled critical extensions %v, want the SAN alone", crt.UnhandledCriticalExtensions)
			}

			chain, err := ca.ChainPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			otherChain, err := otherCA.ChainPEM(otherCertPEM)
			if err != nil {
				t.Fatal(err)
			}
			certFile := writeFile(t, dir, "ek-cert.pem", certPEM)
			chainFile := writeFile(t, dir, "ek-chain.pem", chain)
			pubFile := writeFile(t, dir, "ek-pub.pem", pubPEM)
			otherChainFile := writeFile(t, dir, "other-chain.pem", otherChain)
			bundle := writeFile(t, dir, "ca-bundle.pem", append(append([]byte(nil), root...), mustRead(t, ca.Intermediate)...))

			sw.Stop() // the encrypting side has no TPM
			pcrHex := hex.EncodeToString(pcr16[0])
			dek := make([]byte, 32)
			rand.Read(dek)
			accepted := []sealed{
				{uri: "tpm:ek=" + chainFile + ";ca=" + ca.Root},
				{uri: "tpm:ek=" + certFile + ";ca=" + ca.Intermediate}, // the intermediate as the anchor
				{uri: "tpm:ek=" + certFile + ";ca=" + bundle},          // every certificate in ca= is an anchor
				{uri: "tpm:ek=" + chainFile + ";pcrs=sha256:16=" + pcrHex + ";ca=" + ca.Root, pcr: true},
				{uri: "tpm:ek=" + certFile}, // no ca=: the certificate's key, unchecked
			}
			var all []sealedEDK
			for _, s := range accepted {
				kek := open(t, s.uri)
				edk, err := kek.Wrap(ctx, dek, nil)
				if err != nil {
					t.Fatalf("%s: %v", s.uri, err)
				}
				all = append(all, sealedEDK{s, edk})
			}
			for _, c := range []struct{ ek, ca, want string }{
				{chainFile, otherCA.Root, "does not chain to a CA in"},              // same names, another key
				{otherChainFile, ca.Root, "does not chain to a CA in"},              // another TPM's certificate
				{certFile, ca.Root, "does not chain to a CA in"},                    // the intermediate missing
				{pubFile, ca.Root, "holds only a public key"},                       // no certificate to verify
				{chainFile, pubFile, "holds no PEM certificate"},                    // no CA
				{filepath.Join(dir, "missing.pem"), ca.Root, "missing.pem"},         // no file
				{chainFile, filepath.Join(dir, "missing-ca.pem"), "missing-ca.pem"}, // no CA file
			} {
				uri := "tpm:ek=" + c.ek + ";ca=" + c.ca
				_, err := tpm.OpenURI(ctx, uri)
				if !errors.Is(err, tpm.ErrEKCert) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: %v, want ErrEKCert with %q", uri, err, c.want)
					continue
				}
				if c.want == "does not chain to a CA in" && (!strings.Contains(err.Error(), c.ek) || !strings.Contains(err.Error(), c.ca)) {
					t.Errorf("%s: %v does not name both files", uri, err)
				}
			}

			sw.Restart()
			device := open(t, "tpm:ek?device="+sw.Device())
			for _, s := range all {
				if got, err := device.Unwrap(ctx, s.edk, nil); err != nil || !bytes.Equal(got, dek) {
					t.Fatalf("%s: %v", s.uri, err)
				}
			}
			_, err = open(t, "tpm:ek?device="+other.Device()).Unwrap(ctx, all[0].edk, nil)
			if !errors.Is(err, tpm.ErrDifferentTPM) || !strings.Contains(err.Error(), "sealed to another TPM (EK name") {
				t.Fatalf("another TPM: %v", err)
			}
			od.Close()
			if err := d.ExtendPCR(ctx, 16, []byte("update")); err != nil {
				t.Fatal(err)
			}
			defer d.ResetPCR(ctx, 16)
			for _, s := range all {
				got, err := device.Unwrap(ctx, s.edk, nil)
				if s.pcr {
					if !errors.Is(err, tpm.ErrPCR) || !strings.Contains(err.Error(), "PCR 16") || got != nil {
						t.Fatalf("PCR 16 extended: %s: %v", s.uri, err)
					}
				} else if err != nil || !bytes.Equal(got, dek) {
					t.Fatalf("PCR 16 extended, unbound: %s: %v", s.uri, err)
				}
			}
		})
	}
}

// Without an EK certificate in NV memory, with another key's there, or
// with something else there, exporting the certificate refuses
// (ErrEKCert naming the index).
func TestEKCertRefused(t *testing.T) {
	sw := tpmtest.Start(t) // manufactured without EK certificates
	d := openDevice(t, sw.Device())
	for _, c := range []struct {
		ecc  bool
		want string
	}{{false, "no EK certificate at NV index 0x1c00002"}, {true, "no EK certificate at NV index 0x1c0000a"}} {
		if _, err := d.EKPublicKeyPEM(ctx, c.ecc, true); !errors.Is(err, tpm.ErrEKCert) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ecc %v: %v, want ErrEKCert with %q", c.ecc, err, c.want)
		}
	}
	// A certificate for another P-256 key at the ECC index; not DER at
	// the RSA one.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not this TPM"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := sw.WriteNV(tpmtest.NVECCP256EKCert, der); err != nil {
		t.Fatal(err)
	}
	if err := sw.WriteNV(tpmtest.NVRSAEKCert, []byte("not a certificate")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.EKPublicKeyPEM(ctx, true, true); !errors.Is(err, tpm.ErrEKCert) || !strings.Contains(err.Error(), "the certificate at NV index 0x1c0000a is not for this TPM's EK") {
		t.Errorf("another key's certificate: %v", err)
	}
	if _, err := d.EKPublicKeyPEM(ctx, false, true); !errors.Is(err, tpm.ErrEKCert) || !strings.Contains(err.Error(), "NV index 0x1c00002") {
		t.Errorf("not a certificate: %v", err)
	}
}
