package hsm_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// BenchmarkSoftHSMECDH measures raw ECDH wrap (on the host) and unwrap
// (CKM_ECDH1_DERIVE in the token, the KDF and AES-GCM on the host) on
// SoftHSM2, P-256 and P-384, beside a bare miekg/pkcs11 loop of what
// unwrapping asks of the token: C_DeriveKey, C_GetAttributeValue of the
// secret, C_DestroyObject.
func BenchmarkSoftHSMECDH(b *testing.B) {
	tok := softhsmtest.New(b, softhsmtest.Options{})
	for _, c := range []struct {
		typ   string
		curve ecdh.Curve
		zLen  int
	}{{hsm.KeyECP256, ecdh.P256(), 32}, {hsm.KeyECP384, ecdh.P384(), 48}} {
		uri := tok.URI(c.typ)
		if _, err := hsm.Generate(ctx, uri, c.typ); err != nil {
			b.Fatal(err)
		}
		kek, err := hsm.OpenURI(ctx, uri)
		if err != nil {
			b.Fatal(err)
		}
		dek := make([]byte, 32)
		rand.Read(dek)
		ec := envelope.EncryptionContext{"purpose": "bench"}
		edk, err := kek.Wrap(ctx, dek, ec)
		if err != nil {
			b.Fatal(err)
		}

		p, slot := tok.Slot(b)
		h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			b.Fatal(err)
		}
		p.FindObjectsInit(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), pkcs11.NewAttribute(pkcs11.CKA_LABEL, c.typ)})
		objs, _, _ := p.FindObjects(h, 1)
		p.FindObjectsFinal(h)
		if len(objs) != 1 {
			b.Fatalf("no private key %q", c.typ)
		}
		eph, _ := c.curve.GenerateKey(rand.Reader)
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE, pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, eph.PublicKey().Bytes()))}
		tmpl := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, c.zLen),
		}
		bareDerive := func() error {
			obj, err := p.DeriveKey(h, mech, objs[0], tmpl)
			if err != nil {
				return err
			}
			_, err = p.GetAttributeValue(h, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if derr := p.DestroyObject(h, obj); err == nil {
				err = derr
			}
			return err
		}
		name := c.typ
		b.Run(fmt.Sprintf("%s/bare-derive", name), func(b *testing.B) { parallel(b, 1, bareDerive) })
		b.Run(fmt.Sprintf("%s/hsmenv-wrap", name), func(b *testing.B) {
			parallel(b, 1, func() error { _, err := kek.Wrap(ctx, dek, ec); return err })
		})
		b.Run(fmt.Sprintf("%s/hsmenv-unwrap", name), func(b *testing.B) {
			parallel(b, 1, func() error { _, err := kek.Unwrap(ctx, edk, ec); return err })
		})
	}
}
