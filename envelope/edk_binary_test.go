package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

func TestEDKBinaryRoundTrip(t *testing.T) {
	for _, e := range []envelope.EncryptedDataKey{
		{ProviderID: "raw-ecdh", ProviderInfo: []byte{1, 2, 3}, Ciphertext: bytes.Repeat([]byte{7}, 300)},
		{ProviderID: "", ProviderInfo: nil, Ciphertext: nil},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if want := 6 + len(e.ProviderID) + len(e.ProviderInfo) + len(e.Ciphertext); len(b) != want {
			t.Fatalf("%d bytes, want %d", len(b), want)
		}
		var got envelope.EncryptedDataKey
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if got.ProviderID != e.ProviderID || !bytes.Equal(got.ProviderInfo, e.ProviderInfo) || !bytes.Equal(got.Ciphertext, e.Ciphertext) {
			t.Fatalf("got %+v, want %+v", got, e)
		}
		b[len(b)-1] ^= 1 // the copy must not alias the input
		if len(e.Ciphertext) > 0 && got.Ciphertext[len(got.Ciphertext)-1] != e.Ciphertext[len(e.Ciphertext)-1] {
			t.Fatal("UnmarshalBinary kept a view of its input")
		}
	}
}

func TestEDKBinaryRejects(t *testing.T) {
	b, err := envelope.EncryptedDataKey{ProviderID: "p", ProviderInfo: []byte("i"), Ciphertext: []byte("ct")}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte{}, b...), 0),
		"huge len":  {0xff, 0xff, 'p'},
	} {
		var e envelope.EncryptedDataKey
		if err := e.UnmarshalBinary(in); !errors.Is(err, envelope.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (envelope.EncryptedDataKey{Ciphertext: make([]byte, 1<<16)}).MarshalBinary(); err == nil {
		t.Error("a 65536-byte field marshalled")
	}
}
