package hsm_test

import (
	"errors"
	"testing"

	"github.com/hsmenv/hsmenv/hsm"
	"github.com/miekg/pkcs11"
)

// TestExtractableCheckedOnRelookup: Open refused an extractable key, but a
// key looked up again after a token reset was used without the check, so
// a key swapped behind hsmenv's back (same label, now extractable) wrapped
// data keys.
func TestExtractableCheckedOnRelookup(t *testing.T) {
	tok, kek := aesKEK(t)
	if err := wrapOnce(t, kek); err != nil {
		t.Fatal(err)
	}

	// Another process with the PIN replaces the key by an extractable one
	// under the same label, and the sessions go away (as in a token reset).
	p, slot := tok.Slot(t)
	h, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Login(h, pkcs11.CKU_USER, tok.PIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.Fatal(err)
	}
	if err := p.FindObjectsInit(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kek")}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := p.FindObjects(h, 10)
	p.FindObjectsFinal(h)
	if err != nil || len(objs) != 1 {
		t.Fatalf("find kek: %d objects, %v", len(objs), err)
	}
	if err := p.DestroyObject(h, objs[0]); err != nil {
		t.Fatal(err)
	}
	_, err = p.CreateObject(h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "kek"),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, make([]byte, 32)),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.CloseAllSessions(slot)

	if err := wrapOnce(t, kek); !errors.Is(err, hsm.ErrExtractable) {
		t.Fatalf("wrap with the swapped, extractable key: %v, want ErrExtractable", err)
	}
	// And a fresh Open refuses it as before.
	if _, err := hsm.OpenURI(ctx, tok.URI("kek")); !errors.Is(err, hsm.ErrExtractable) {
		t.Fatalf("Open of the extractable key: %v, want ErrExtractable", err)
	}
}
