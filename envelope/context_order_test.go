package envelope_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// TestUnsortedContextAccepted pins the decision documented in
// docs/format.md: a received context whose keys are not in UTF-8 byte
// order (JS ESDK releases before its issue #428 fix wrote localeCompare
// order, "a" before "B") is accepted, because the header tag authenticates the bytes as they were
// read; duplicates stay an error.
func TestUnsortedContextAccepted(t *testing.T) {
	ser := func(pairs ...string) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(pairs)/2))
		for _, s := range pairs {
			b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
			b = append(b, s...)
		}
		return b
	}
	pt := []byte("context order")
	f := newMsgForge()
	f.ctx = ser("a", "1", "B", "2", "ключ", "3", "Z", "4") // localeCompare order, not bytewise
	got, h, err := envelope.Decrypt(context.Background(), f.message(pt), f.keyring(), envelope.DecryptOptions{})
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("unsorted context: %v", err)
	}
	want := envelope.EncryptionContext{"a": "1", "B": "2", "ключ": "3", "Z": "4"}
	if !maps.Equal(h.Context, want) {
		t.Fatalf("context %v, want %v", h.Context, want)
	}
	// Reordering the pairs of a sealed header is not a way around the tag.
	msg := f.message(pt)
	at := bytes.Index(msg, f.ctx)
	copy(msg[at:], ser("B", "2", "Z", "4", "a", "1", "ключ", "3"))
	if _, _, err := envelope.Decrypt(context.Background(), msg, f.keyring(), envelope.DecryptOptions{}); err == nil {
		t.Fatal("pairs reordered after sealing: decrypted")
	}
	// A duplicate key, in any order, is malformed.
	f.ctx = ser("b", "1", "a", "2", "b", "3")
	if _, _, err := envelope.Decrypt(context.Background(), f.message(pt), f.keyring(), envelope.DecryptOptions{}); err == nil {
		t.Fatal("duplicate key accepted")
	}
}
