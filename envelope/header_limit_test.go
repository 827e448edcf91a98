package envelope_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// edkFlood is a header claiming 65,535 EDKs, then endless 0xFF bytes: every
// EDK field says 65,535 bytes. A parser that reads before it counts would
// take 12 GiB; it counts how much was read.
type edkFlood struct {
	prefix []byte
	read   int64
}

func newEDKFlood() *edkFlood {
	p := []byte{2, 0x04, 0x78}
	p = append(p, make([]byte, 32)...) // message id
	p = append(p, 0, 0)                // empty context
	p = append(p, 0xFF, 0xFF)          // EDK count 65,535
	return &edkFlood{prefix: p}
}

func (f *edkFlood) Read(b []byte) (int, error) {
	const stop = 64 << 20 // enough to tell "read it all" from "refused early"
	if f.read >= stop {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && f.read < stop {
		if f.read < int64(len(f.prefix)) {
			b[n] = f.prefix[f.read]
		} else {
			b[n] = 0xFF
		}
		n++
		f.read++
	}
	return n, nil
}

func TestParseHeaderBoundsEDKs(t *testing.T) {
	f := newEDKFlood()
	_, err := envelope.ParseHeader(f)
	if !errors.Is(err, envelope.ErrTooManyEDKs) {
		t.Fatalf("ParseHeader of a 65,535-EDK header: %v, want ErrTooManyEDKs", err)
	}
	if f.read > 64<<10 {
		t.Fatalf("ParseHeader read %d bytes of EDKs before refusing", f.read)
	}
	// A raised bound lets a real many-EDK header through.
	kek, err := rawaes.New("test", "a", randBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	msg := manyEDKMessage(t, kek, 70)
	if _, err := envelope.ParseHeader(bytes.NewReader(msg)); !errors.Is(err, envelope.ErrTooManyEDKs) {
		t.Fatalf("70 EDKs under the default bound: %v", err)
	}
	h, err := envelope.ParseHeaderMax(bytes.NewReader(msg), 70)
	if err != nil || len(h.EDKs) != 70 {
		t.Fatalf("ParseHeaderMax(70): %v", err)
	}
}

// manyEDKMessage encrypts under n copies of kek (the limit lifted).
func manyEDKMessage(t *testing.T, kek envelope.KEK, n int) []byte {
	t.Helper()
	keks := make([]envelope.KEK, n)
	for i := range keks {
		keks[i] = kek
	}
	many := envelope.NewKeyring(keks...)
	msg, err := envelope.Encrypt(t.Context(), []byte("x"), many, envelope.EncryptOptions{MaxEncryptedDataKeys: -1})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
