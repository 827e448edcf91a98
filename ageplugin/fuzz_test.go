package ageplugin

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"filippo.io/age"
)

// FuzzDecode feeds identity and recipient payloads to their parsers: no
// panic, and what parses encodes back to the same payload.
func FuzzDecode(f *testing.F) {
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	p, _ := compress(priv.PublicKey())
	f.Add([]byte{1, 1, 'p', 'k', 'c', 's', '1', '1', ':', 'x', '=', 'y'})
	f.Add(append(append([]byte{1, 2}, p...), "tpm:seal"...))
	f.Add(append([]byte{1, 2}, p...))
	f.Add([]byte{1, 1, 'p', 'k', 'c', 's', '1', '1', ':', 'p', 'i', 'n', '-', 'v', 'a', 'l', 'u', 'e', '=', '1'})
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := DecodeIdentity(data); err == nil {
			s, err := k.Identity()
			if err != nil {
				t.Fatalf("decoded identity %+v does not encode: %v", k, err)
			}
			k2, err := ParseIdentity(s)
			if err != nil || k2.URI != k.URI || (k.P256 == nil) != (k2.P256 == nil) {
				t.Fatalf("identity round trip: %+v, %v", k2, err)
			}
		}
		if k, err := DecodeRecipient(data); err == nil {
			if k.P256 == nil && k.URI == "" {
				t.Fatal("a recipient with neither key nor URI")
			}
			if _, err := k.PluginRecipient(); err != nil {
				t.Fatalf("decoded recipient %+v does not encode: %v", k, err)
			}
		}
	})
}

// FuzzStanza feeds stanza bodies and arguments to the two stanza parsers:
// no panic, and an hsmenv stanza that parses re-marshals to its body.
func FuzzStanza(f *testing.F) {
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	r, _ := tagRecipient(priv.PublicKey())
	ss, _ := r.Wrap(make([]byte, 16))
	f.Add(ss[0].Args[0], ss[0].Args[1], ss[0].Body)
	f.Add("", "", []byte{0, 3, 'a', 'b', 'c', 0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, a0, a1 string, body []byte) {
		if _, err := parseP256Stanza(&age.Stanza{Type: p256TagStanza, Args: []string{a0, a1}, Body: body}, r); err == nil {
			if len(body) != p256BodyLen {
				t.Fatalf("a %d-byte p256tag body parsed", len(body))
			}
		}
		edk, err := parseKEKStanza(&age.Stanza{Type: StanzaType, Body: body})
		if err != nil {
			return
		}
		b, err := edk.MarshalBinary()
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("hsmenv stanza does not re-marshal to its body: %v", err)
		}
	})
}
