package tpm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

var ekTypes = []struct {
	name string
	ecc  bool
}{{"rsa", false}, {"ecc", true}}

// BenchmarkEKWrap seals a 32-byte data key to an EK from its PEM public
// key, on a machine without a TPM (the fleet server's side of tpm:ek=).
func BenchmarkEKWrap(b *testing.B) {
	for _, typ := range ekTypes {
		b.Run(typ.name, func(b *testing.B) {
			var pub any
			if typ.ecc {
				k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				pub = k.Public()
			} else {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					b.Fatal(err)
				}
				pub = k.Public()
			}
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				b.Fatal(err)
			}
			file := filepath.Join(b.TempDir(), "ek.pem")
			os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
			kek := open(b, "tpm:ek="+file)
			dek := make([]byte, 32)
			rand.Read(dek)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := kek.Wrap(ctx, dek, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// ekSealed starts an swtpm and seals a 32-byte data key to its EK (from
// the exported PEM, as a server would); the device's connection is closed.
func ekSealed(b *testing.B, ecc bool) (*tpmtest.SWTPM, envelope.EncryptedDataKey) {
	sw, d := startTPM(b)
	p, err := d.EKPublicKeyPEM(ctx, ecc, false)
	if err != nil {
		b.Fatal(err)
	}
	d.Close()
	file := filepath.Join(b.TempDir(), "ek.pem")
	os.WriteFile(file, p, 0o644)
	dek := make([]byte, 32)
	rand.Read(dek)
	edk, err := open(b, "tpm:ek="+file).Wrap(ctx, dek, nil)
	if err != nil {
		b.Fatal(err)
	}
	return sw, edk
}

// BenchmarkEKUnwrap opens an EK-sealed data key on swtpm, through hsmenv
// (tpm:ek?device=: CreatePrimary EK, Import, Load, Unseal, flushes, with
// hsmenv's checks) and beside it with go-tpm alone on a raw connection to
// the same swtpm (BareImportLoadUnseal: CreatePrimary EK; Import and Load
// each in a policy session with PolicySecret on the endorsement
// hierarchy, salted with the EK; Unseal in an HMAC session salted with the
// EK that encrypts the response; the two flushes).
//
// Both must run on one swtpm: creating an RSA EK is a prime search whose
// length depends on the TPM's endorsement seed, so two swtpms' RSA EKs
// take different times (50 against 100 ms/op was seen) and their figures
// cannot be compared.
func BenchmarkEKUnwrap(b *testing.B) {
	for _, typ := range ekTypes {
		b.Run(typ.name, func(b *testing.B) {
			sw, edk := ekSealed(b, typ.ecc)
			b.Run("hsmenv", func(b *testing.B) {
				kek := open(b, "tpm:ek?device="+sw.Device())
				defer openDevice(b, sw.Device()).Close()             // hand swtpm to the bare run
				if _, err := kek.Unwrap(ctx, edk, nil); err != nil { // connect, load the SRK
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := kek.Unwrap(ctx, edk, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("BareImportLoadUnseal", func(b *testing.B) {
				once := bareEKUnseal(b, sw, edk, typ.ecc)
				if err := once(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := once(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// bareEKUnseal returns one Import+Load+Unseal of edk with go-tpm alone on
// a raw connection to sw (closed when b ends), no hsmenv checks.
func bareEKUnseal(b *testing.B, sw *tpmtest.SWTPM, edk envelope.EncryptedDataKey, ecc bool) func() error {
	var f [3][]byte
	ct := edk.Ciphertext
	for i := range f {
		n := int(binary.BigEndian.Uint16(ct))
		f[i], ct = ct[2:2+n], ct[2+n:]
	}
	pub := tpm2.BytesAs2B[tpm2.TPMTPublic](f[0])
	dup, seed := tpm2.TPM2BPrivate{Buffer: f[1]}, tpm2.TPM2BEncryptedSecret{Buffer: f[2]}
	tp, err := sw.Open()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tp.Close() })
	tmpl := tpm2.RSAEKTemplate
	if ecc {
		tmpl = tpm2.ECCEKTemplate
	}
	once := func() error {
		ek, err := (tpm2.CreatePrimary{
			PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
			InPublic:      tpm2.New2B(tmpl),
		}).Execute(tp)
		if err != nil {
			return err
		}
		defer (tpm2.FlushContext{FlushHandle: ek.ObjectHandle}).Execute(tp)
		ekPub, err := ek.OutPublic.Contents()
		if err != nil {
			return err
		}
		secret := func(t transport.TPM, h tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
			_, err := (tpm2.PolicySecret{
				AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
				PolicySession: h,
				NonceTPM:      nonce,
			}).Execute(t)
			return err
		}
		parent := func() tpm2.AuthHandle {
			return tpm2.AuthHandle{Handle: ek.ObjectHandle, Name: ek.Name,
				Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, secret, tpm2.Salted(ek.ObjectHandle, *ekPub))}
		}
		imp, err := (tpm2.Import{ParentHandle: parent(), ObjectPublic: pub, Duplicate: dup, InSymSeed: seed}).Execute(tp)
		if err != nil {
			return err
		}
		lr, err := (tpm2.Load{ParentHandle: parent(), InPrivate: imp.OutPrivate, InPublic: pub}).Execute(tp)
		if err != nil {
			return err
		}
		defer (tpm2.FlushContext{FlushHandle: lr.ObjectHandle}).Execute(tp)
		_, err = (tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: lr.ObjectHandle, Name: lr.Name,
			Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Salted(ek.ObjectHandle, *ekPub), tpm2.AESEncryption(128, tpm2.EncryptOut))}}).Execute(tp)
		return err
	}
	return once
}
