package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// TestNotAMessage: input that no message starts like (empty, text, a PDF,
// zeros, a bad version, v1 message type or suite) is ErrNotMessage, and
// still the sentinel it was reported with before; the start of a real
// message cut short is ErrTruncated, not ErrNotMessage.
func TestNotAMessage(t *testing.T) {
	msg, err := envelope.Encrypt(context.Background(), randBytes(100), envelope.NewKeyring(aesKEK(t, "k")), envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		in    []byte
		also  error
		empty bool
	}{
		{"empty", nil, envelope.ErrTruncated, true},
		{"text", []byte("hello, world\n"), envelope.ErrUnsupported, false},
		{"pdf", []byte("%PDF-1.7\n"), envelope.ErrUnsupported, false},
		{"zeros", make([]byte, 100), envelope.ErrUnsupported, false},
		{"v1 message type", append([]byte{1, 0x52}, msg[1:]...), envelope.ErrMalformed, false},
		{"v2 unknown suite", append([]byte{2, 0x14, 0x98}, msg[3:]...), envelope.ErrUnsupported, false},
	} {
		_, err := envelope.ParseHeader(bytes.NewReader(c.in))
		if !errors.Is(err, envelope.ErrNotMessage) || !errors.Is(err, c.also) {
			t.Errorf("%s: %v, want ErrNotMessage and %v", c.name, err, c.also)
		}
		if got := strings.Contains(err.Error(), "empty"); got != c.empty {
			t.Errorf("%s: %q says empty: %v", c.name, err, got)
		}
	}
	for _, n := range []int{1, 3, 50} {
		if _, err := envelope.ParseHeader(bytes.NewReader(msg[:n])); !errors.Is(err, envelope.ErrTruncated) || errors.Is(err, envelope.ErrNotMessage) {
			t.Errorf("cut at %d: %v, want ErrTruncated only", n, err)
		}
	}
}
