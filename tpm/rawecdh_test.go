package tpm_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/tpm"
)

// ECC key files as ESDK raw ECDH recipients (ephemeral key schema, P-256),
// against swtpm.

// TestRawECDHRoundTrip: ECC key files write raw ECDH EDKs that name the
// key's public point, through the envelope with both committing suites,
// under a context with a pair that is bound but not stored, for a key
// without a policy and one with a PIN and a PCR policy. The software raw
// ECDH keyring with only the public key (as any ESDK producer) encrypts
// messages the TPM opens.
func TestRawECDHRoundTrip(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	pin := pinFile(t, "correct horse")
	ec := envelope.EncryptionContext{"purpose": "tpm-test", "ключ": "値", "device": "edge-7"}
	before := handles(t, d)
	for _, c := range []struct{ name, uri string }{
		{"ecc", keygen(t, dir, "ecc", tpm.KeyECCP256, "", d.Path(), "")},
		{"ecc-pcr-pin", keygen(t, dir, "ecc-pp", tpm.KeyECCP256, ";pcrs=sha256:16;pin=yes", d.Path(), pin)},
	} {
		kek := open(t, c.uri).(*tpm.KeyKEK)
		pub := kek.PublicKey().(*ecdh.PublicKey)
		producers := []struct {
			name string
			kek  envelope.KEK
		}{{"tpm-kek", kek}, {"software-ephemeral", rawecdh.NewEphemeral(pub)}}
		for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
			for _, p := range producers {
				t.Run(fmt.Sprintf("%s/%v/%s", c.name, suite, p.name), func(t *testing.T) {
					pt := make([]byte, 70_000)
					rand.Read(pt)
					msg, err := envelope.Encrypt(ctx, pt, envelope.NewKeyring(p.kek), envelope.EncryptOptions{Suite: suite, Context: ec, RequiredContextKeys: []string{"device"}})
					if err != nil {
						t.Fatal(err)
					}
					h, err := envelope.ParseHeader(bytes.NewReader(msg))
					if err != nil {
						t.Fatal(err)
					}
					if len(h.EDKs) != 1 {
						t.Fatalf("%d EDKs", len(h.EDKs))
					}
					edk := h.EDKs[0]
					info, err := rawecdh.ParseInfo(edk.ProviderInfo)
					if edk.ProviderID != rawecdh.ProviderID || err != nil || !info.Recipient.Equal(pub) || len(edk.ProviderInfo) != 75 || len(edk.Ciphertext) != 112 {
						t.Fatalf("EDK %q, %d-byte info (%v), %d-byte ciphertext: not a P-256 raw ECDH EDK to this key", edk.ProviderID, len(edk.ProviderInfo), err, len(edk.Ciphertext))
					}
					got, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(kek), envelope.DecryptOptions{ReproducedContext: envelope.EncryptionContext{"device": "edge-7"}})
					if err != nil {
						t.Fatalf("TPM decrypt: %v", err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatal("decrypted plaintext differs")
					}
				})
			}
		}
	}
	if after := handles(t, d); after != before {
		t.Fatalf("handles before %+v, after %+v", before, after)
	}
}

// legacyKEK wraps in the layout ECC key files wrote before the ESDK raw
// ECDH layout (the old code, kept in export_test.go).
type legacyKEK struct{ *tpm.KeyKEK }

func (k legacyKEK) Wrap(_ context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	return k.WrapLegacyECDH(dek, ec)
}

// TestLegacyECDHEDK: messages whose EDKs ECC key files wrote in their old
// layout (provider id hsmenv-tpm-ecdh) still open, and their context is
// still checked.
func TestLegacyECDHEDK(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	for _, uri := range []string{
		keygen(t, dir, "old", tpm.KeyECCP256, "", d.Path(), ""),
		keygen(t, dir, "old-pp", tpm.KeyECCP256, ";pcrs=16;pin=yes", d.Path(), "&pin-value=1234"),
	} {
		kek := open(t, uri).(*tpm.KeyKEK)
		pt, msg := encrypt(t, legacyKEK{kek})
		h, err := envelope.ParseHeader(bytes.NewReader(msg))
		if err != nil || h.EDKs[0].ProviderID != tpm.ProviderECDH {
			t.Fatalf("the legacy wrap made %+v (%v)", h.EDKs, err)
		}
		if err := decrypt(t, pt, msg, kek); err != nil {
			t.Fatalf("legacy message: %v", err)
		}
		dek := randomKey(32)
		edk, err := kek.WrapLegacyECDH(dek, testContext)
		if err != nil {
			t.Fatal(err)
		}
		got, err := kek.Unwrap(ctx, edk, testContext)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("legacy EDK: %x, %v", got, err)
		}
		if _, err := kek.Unwrap(ctx, edk, envelope.EncryptionContext{"purpose": "other"}); !errors.Is(err, tpm.ErrUnwrap) {
			t.Fatalf("legacy EDK under another context: %v", err)
		}
	}
}

// TestRawECDHClaims: a key claims raw ECDH EDKs to its own public point
// only, and its legacy EDKs by name; another ECC key, an RSA key and
// malformed provider info claim nothing, and unwrapping another key's EDK
// fails before the TPM is used.
func TestRawECDHClaims(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	a := open(t, keygen(t, dir, "a", tpm.KeyECCP256, "", d.Path(), "")).(*tpm.KeyKEK)
	b := open(t, keygen(t, dir, "b", tpm.KeyECCP256, "", d.Path(), "")).(*tpm.KeyKEK)
	r := open(t, keygen(t, dir, "r", tpm.KeyRSA2048, "", d.Path(), "")).(*tpm.KeyKEK)
	edk, err := a.Wrap(ctx, randomKey(32), testContext)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := a.WrapLegacyECDH(randomKey(32), testContext)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Claims(edk) || !a.Claims(legacy) {
		t.Fatal("a key does not claim its own EDKs")
	}
	if b.Claims(edk) || b.Claims(legacy) || r.Claims(edk) || r.Claims(legacy) {
		t.Fatal("another key claims the EDKs")
	}
	// The same provider info under another provider id; malformed info.
	for name, e := range map[string]envelope.EncryptedDataKey{
		"provider id":     {ProviderID: "raw-ecdh-x", ProviderInfo: edk.ProviderInfo, Ciphertext: edk.Ciphertext},
		"truncated info":  {ProviderID: edk.ProviderID, ProviderInfo: edk.ProviderInfo[:74], Ciphertext: edk.Ciphertext},
		"version":         {ProviderID: edk.ProviderID, ProviderInfo: append([]byte{2}, edk.ProviderInfo[1:]...), Ciphertext: edk.Ciphertext},
		"sender off-form": {ProviderID: edk.ProviderID, ProviderInfo: append(bytes.Clone(edk.ProviderInfo[:42]), append([]byte{5}, edk.ProviderInfo[43:]...)...), Ciphertext: edk.Ciphertext},
	} {
		if a.Claims(e) {
			t.Errorf("%s: claimed", name)
		}
	}
	pt, msg := encrypt(t, a)
	if err := decrypt(t, pt, msg, b); !errors.Is(err, envelope.ErrNoKEK) || !strings.Contains(err.Error(), "no EDK of this message names it") {
		t.Fatalf("another key decrypting: %v", err)
	}
	if _, err := b.Unwrap(ctx, edk, testContext); !errors.Is(err, tpm.ErrUnwrap) || !strings.Contains(err.Error(), "not for this key") {
		t.Fatalf("another key unwrapping: %v", err)
	}
}

// TestRawECDHTampered: an altered raw ECDH EDK, or the wrong context, fails
// with one clear line (ErrUnwrap; rawecdh.ErrCommitment where the host's
// commitment check catches it) for a key with a PIN, without counting
// towards the TPM's dictionary-attack lockout (the right PIN is sent, and
// not discarded: the KEK still opens the genuine EDK). Malformed ones fail
// before the TPM is reached. A wrong PIN, the control, does count.
func TestRawECDHTampered(t *testing.T) {
	_, d := startTPM(t)
	uri := keygen(t, t.TempDir(), "k", tpm.KeyECCP256, ";pin=yes", d.Path(), "&pin-value=right")
	kek := open(t, uri).(*tpm.KeyKEK)
	dek := randomKey(32)
	edk, err := kek.Wrap(ctx, dek, testContext)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) envelope.EncryptedDataKey {
		e := edk
		e.Ciphertext = bytes.Clone(edk.Ciphertext)
		e.Ciphertext[i] ^= 1
		return e
	}
	sender := edk
	sender.ProviderInfo = append(bytes.Clone(edk.ProviderInfo[:42]), rawecdh.Compressed(other.PublicKey())...)
	truncated := edk
	truncated.Ciphertext = edk.Ciphertext[:len(edk.Ciphertext)-1]
	before := lockoutCounter(t, d)
	for _, c := range []struct {
		name       string
		edk        envelope.EncryptedDataKey
		ec         envelope.EncryptionContext
		commitment bool // the commitment check catches it
	}{
		{"salt", flip(0), testContext, true},
		{"commitment key", flip(40), testContext, true},
		{"wrapped key", flip(70), testContext, false},
		{"tag", flip(len(edk.Ciphertext) - 1), testContext, false},
		{"truncated", truncated, testContext, false},
		{"sender key", sender, testContext, true},
		{"other context", edk, envelope.EncryptionContext{"purpose": "tpm-test", "ключ": "other"}, true},
		{"no context", edk, nil, true},
	} {
		got, err := kek.Unwrap(ctx, c.edk, c.ec)
		if err == nil {
			t.Errorf("%s: unwrapped %x", c.name, got)
			continue
		}
		if !errors.Is(err, tpm.ErrUnwrap) || (c.commitment && !errors.Is(err, rawecdh.ErrCommitment)) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), kek.String()) {
			t.Errorf("%s: %v; want one line naming the KEK, wrapping ErrUnwrap (and ErrCommitment: %v)", c.name, err, c.commitment)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if after := lockoutCounter(t, d); after != before {
		t.Fatalf("the dictionary-attack counter went from %d to %d", before, after)
	}
	// Malformed EDKs fail before the TPM is reached: the same key with no
	// TPM behind it says ErrUnwrap, not ErrDevice (which the genuine EDK
	// gets).
	offline := open(t, strings.Replace(uri, d.Path(), closedPort(t), 1))
	if _, err := offline.Unwrap(ctx, edk, testContext); !errors.Is(err, tpm.ErrDevice) {
		t.Fatalf("the genuine EDK without the TPM: %v", err)
	}
	offCurve := edk
	offCurve.ProviderInfo = append(bytes.Clone(edk.ProviderInfo[:42]), append([]byte{5}, edk.ProviderInfo[43:]...)...)
	for name, e := range map[string]envelope.EncryptedDataKey{"truncated": truncated, "sender not a point": offCurve} {
		if _, err := offline.Unwrap(ctx, e, testContext); !errors.Is(err, tpm.ErrUnwrap) || errors.Is(err, tpm.ErrDevice) {
			t.Errorf("%s, without the TPM: %v; want ErrUnwrap before the TPM is reached", name, err)
		}
	}
	got, err := kek.Unwrap(ctx, edk, testContext)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("the genuine EDK after the altered ones: %x, %v", got, err)
	}
	// Through the envelope: the wrong reproduced context.
	pt := randomKey(1000)
	msg, err := envelope.Encrypt(ctx, pt, envelope.NewKeyring(kek), envelope.EncryptOptions{Context: testContext, RequiredContextKeys: []string{"purpose"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(kek), envelope.DecryptOptions{ReproducedContext: envelope.EncryptionContext{"purpose": "other"}}); !errors.Is(err, envelope.ErrNoKEK) || !errors.Is(err, rawecdh.ErrCommitment) {
		t.Fatalf("decrypt with the wrong reproduced context: %v", err)
	}
	if after := lockoutCounter(t, d); after != before {
		t.Fatalf("the dictionary-attack counter went from %d to %d", before, after)
	}
	// The control: a wrong PIN counts.
	wrong := open(t, strings.Replace(uri, "pin-value=right", "pin-value=wrong", 1))
	if _, err := wrong.Unwrap(ctx, edk, testContext); !errors.Is(err, tpm.ErrPIN) {
		t.Fatalf("wrong PIN: %v", err)
	}
	if after := lockoutCounter(t, d); after != before+1 {
		t.Fatalf("a wrong PIN moved the dictionary-attack counter from %d to %d, want +1", before, after)
	}
}
