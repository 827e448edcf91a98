package tpm_test

import (
	"encoding/binary"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/tpm"
)

// blobs splits TPM2B_PUBLIC || TPM2B_PRIVATE.
func blobs(b []byte) (tpm2.TPM2BPublic, tpm2.TPM2BPrivate) {
	n := binary.BigEndian.Uint16(b)
	pub := b[2 : 2+n]
	priv := b[4+n:]
	return tpm2.BytesAs2B[tpm2.TPMTPublic](pub), tpm2.TPM2BPrivate{Buffer: priv}
}

// median returns the median of ds (sorting them).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// BenchmarkUnwrap measures one unwrap of each KEK kind on swtpm through
// hsmenv (KEK.Unwrap) against the bare go-tpm command sequence it runs, on
// the same connection with the SRK loaded: TPM2_Load (password session on
// the SRK), then TPM2_Unseal / TPM2_RSA_Decrypt / TPM2_ECDH_ZGen with a
// salted HMAC session encrypting the response, then TPM2_FlushContext. The
// ECC key's EDK is in the ESDK raw ECDH layout: hsmenv's figure includes
// parsing the provider info (two point decompressions) and rawecdh.Open
// (KDF, commitment check, AES-GCM) on the host, the bare one only ECDH_ZGen
// (ecc-p256-legacy: an EDK of the older layout, HKDF and AES-GCM).
// Each iteration runs both, alternately, so that drift in the machine's
// load hits both alike; ns/op is their sum. The medians of each and their
// ratio are reported (hsmenv-µs, bare-µs, ratio).
func BenchmarkUnwrap(b *testing.B) {
	_, d := startTPM(b)
	dir := b.TempDir()
	ec := envelope.EncryptionContext{"purpose": "bench"}
	type kind struct {
		name string
		kek  envelope.KEK
		file string // key file, for the bare sequence
	}
	kinds := []kind{
		{"seal", open(b, "tpm:seal?device="+d.Path()), ""},
		{"rsa-2048", open(b, keygen(b, dir, "rsa", tpm.KeyRSA2048, "", d.Path(), "")), filepath.Join(dir, "rsa.tpmkey")},
		{"ecc-p256", open(b, keygen(b, dir, "ecc", tpm.KeyECCP256, "", d.Path(), "")), filepath.Join(dir, "ecc.tpmkey")},
		{"ecc-p256-legacy", legacyKEK{open(b, keygen(b, dir, "old", tpm.KeyECCP256, "", d.Path(), "")).(*tpm.KeyKEK)}, filepath.Join(dir, "old.tpmkey")},
	}
	for _, k := range kinds {
		edk, err := k.kek.Wrap(ctx, make([]byte, 32), ec)
		if err != nil {
			b.Fatal(err)
		}
		var pub tpm2.TPM2BPublic
		var priv tpm2.TPM2BPrivate
		if k.file == "" {
			pub, priv = blobs(edk.Ciphertext)
		} else {
			raw, _ := os.ReadFile(k.file)
			block, _ := pem.Decode(raw)
			pub, priv = blobs(block.Bytes)
		}
		b.Run(k.name, func(b *testing.B) {
			var ours, bare []time.Duration
			for i := 0; b.Loop(); i++ {
				hsmenv := func() error {
					start := time.Now()
					dek, err := k.kek.Unwrap(ctx, edk, ec)
					ours = append(ours, time.Since(start))
					clear(dek)
					return err
				}
				direct := func() error {
					return d.Do(ctx, func(tp transport.TPM, srk tpm.SRK) error {
						start := time.Now()
						err := bareUnwrap(tp, srk, k.name, pub, priv, edk)
						bare = append(bare, time.Since(start))
						return err
					})
				}
				first, second := hsmenv, direct
				if i%2 == 1 {
					first, second = direct, hsmenv
				}
				if err := first(); err != nil {
					b.Fatal(err)
				}
				if err := second(); err != nil {
					b.Fatal(err)
				}
			}
			o, r := median(ours), median(bare)
			b.ReportMetric(float64(o.Nanoseconds())/1e3, "hsmenv-µs")
			b.ReportMetric(float64(r.Nanoseconds())/1e3, "bare-µs")
			b.ReportMetric(float64(o)/float64(r), "ratio")
		})
	}
}

// bareUnwrap is the command sequence of one unwrap, written directly with
// go-tpm.
func bareUnwrap(tp transport.TPM, srk tpm.SRK, kind string, pub tpm2.TPM2BPublic, priv tpm2.TPM2BPrivate, edk envelope.EncryptedDataKey) error {
	lr, err := (tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.Handle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    priv,
		InPublic:     pub,
	}).Execute(tp)
	if err != nil {
		return err
	}
	defer (tpm2.FlushContext{FlushHandle: lr.ObjectHandle}).Execute(tp)
	h := tpm2.AuthHandle{Handle: lr.ObjectHandle, Name: lr.Name,
		Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Salted(srk.Handle, srk.Public), tpm2.AESEncryption(128, tpm2.EncryptOut))}
	switch kind {
	case "seal":
		rsp, err := (tpm2.Unseal{ItemHandle: h}).Execute(tp)
		if err == nil {
			clear(rsp.OutData.Buffer)
		}
		return err
	case "rsa-2048":
		rsp, err := (tpm2.RSADecrypt{
			KeyHandle:  h,
			CipherText: tpm2.TPM2BPublicKeyRSA{Buffer: edk.Ciphertext},
			InScheme: tpm2.TPMTRSADecrypt{
				Scheme:  tpm2.TPMAlgOAEP,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgOAEP, &tpm2.TPMSEncSchemeOAEP{HashAlg: tpm2.TPMAlgSHA256}),
			},
		}).Execute(tp)
		if err == nil {
			clear(rsp.Message.Buffer)
		}
		return err
	default: // ECDH: the sender point of raw ECDH provider info, or the legacy ephemeral point
		var pt []byte
		if edk.ProviderID == rawecdh.ProviderID {
			info, err := rawecdh.ParseInfo(edk.ProviderInfo)
			if err != nil {
				return err
			}
			pt = info.Sender.Bytes()
		} else {
			n := int(binary.BigEndian.Uint16(edk.ProviderInfo[1:]))
			pt = edk.ProviderInfo[3+n : 3+n+65]
		}
		_, err := (tpm2.ECDHZGen{KeyHandle: h, InPoint: tpm2.New2B(tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: pt[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: pt[33:]},
		})}).Execute(tp)
		return err
	}
}
