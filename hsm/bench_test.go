package hsm_test

import (
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

// parallel runs n operations split over g goroutines.
func parallel(b *testing.B, g int, op func() error) {
	var wg sync.WaitGroup
	per := b.N / g
	errs := make(chan error, g)
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < per; j++ {
				if err := op(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkSoftHSM compares hsmenv's AES-GCM wrap and unwrap on SoftHSM2
// with a bare miekg/pkcs11 C_EncryptInit+C_Encrypt (C_DecryptInit+C_Decrypt)
// loop on the same key, with 1 and 2 goroutines.
func BenchmarkSoftHSM(b *testing.B) {
	tok := softhsmtest.New(b, softhsmtest.Options{})
	uri := tok.URI("kek")
	if _, err := hsm.Generate(ctx, uri, hsm.KeyAES256); err != nil {
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
	aad, _ := ec.Serialize()

	mod, _ := hsm.LoadModule(tok.Module, "")
	p := mod.Ctx()
	slots, _ := p.GetSlotList(true)
	var slot uint
	for _, s := range slots {
		if ti, _ := p.GetTokenInfo(s); ti.Label == tok.Label {
			slot = s
		}
	}
	// Bare sessions, one per goroutine, logged in (the login is shared).
	bare := make(chan pkcs11.SessionHandle, 2)
	for i := 0; i < 2; i++ {
		h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			b.Fatal(err)
		}
		p.Login(h, pkcs11.CKU_USER, tok.PIN)
		bare <- h
	}
	h := <-bare
	p.FindObjectsInit(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kek")})
	objs, _, _ := p.FindObjects(h, 1)
	p.FindObjectsFinal(h)
	bare <- h
	key := objs[0]
	iv := make([]byte, 12)
	bareEncrypt := func() error {
		h := <-bare
		defer func() { bare <- h }()
		rand.Read(iv)
		params := pkcs11.NewGCMParams(iv, aad, 128)
		defer params.Free()
		if err := p.EncryptInit(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return err
		}
		_, err := p.Encrypt(h, dek)
		return err
	}
	ivEDK, _ := edkIV(edk)
	bareDecrypt := func() error {
		h := <-bare
		defer func() { bare <- h }()
		params := pkcs11.NewGCMParams(ivEDK, aad, 128)
		defer params.Free()
		if err := p.DecryptInit(h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
			return err
		}
		_, err := p.Decrypt(h, edk.Ciphertext)
		return err
	}
	for _, g := range []int{1, 2} {
		b.Run(fmt.Sprintf("bare-encrypt/g%d", g), func(b *testing.B) { parallel(b, g, bareEncrypt) })
		b.Run(fmt.Sprintf("hsmenv-wrap/g%d", g), func(b *testing.B) {
			parallel(b, g, func() error { _, err := kek.Wrap(ctx, dek, ec); return err })
		})
		b.Run(fmt.Sprintf("bare-decrypt/g%d", g), func(b *testing.B) { parallel(b, g, bareDecrypt) })
		b.Run(fmt.Sprintf("hsmenv-unwrap/g%d", g), func(b *testing.B) {
			parallel(b, g, func() error { _, err := kek.Unwrap(ctx, edk, ec); return err })
		})
	}
}

func edkIV(edk envelope.EncryptedDataKey) ([]byte, bool) {
	info := edk.ProviderInfo
	if len(info) < 12 {
		return nil, false
	}
	return info[len(info)-12:], true
}
