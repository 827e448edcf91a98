package tpm_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// An EK certificate stored with the TCG PC Client NV header (10 01 00
// LEN), or padded after its DER, as some TPMs store it: exported as the
// bare DER.
func TestEKCertNVPadding(t *testing.T) {
	sw := tpmtest.Start(t)
	d := openDevice(t, sw.Device())
	p, err := d.EKPublicKeyPEM(ctx, false, false)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(p)
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	header := append([]byte{0x10, 0x01, 0x00}, binary.BigEndian.AppendUint16(nil, uint16(len(der)))...)
	for name, nv := range map[string][]byte{
		"ff-padded":   append(bytes.Clone(der), bytes.Repeat([]byte{0xff}, 100)...),
		"zero-padded": append(bytes.Clone(der), make([]byte, 100)...),
		"header":      append(header, der...),
	} {
		d.Close() // WriteNV needs the only connection
		if err := sw.WriteNV(tpmtest.NVRSAEKCert, nv); err != nil {
			t.Fatal(err)
		}
		got, err := d.EKPublicKeyPEM(ctx, false, true)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if b, _ := pem.Decode(got); !bytes.Equal(b.Bytes, der) {
			t.Errorf("%s: exported another DER", name)
		}
	}
}
