package goesdk_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// TestTamper: a message with one flipped byte, at every offset (every 7th
// for signed messages) over its header (fields, EDK, commitment, tag), body
// frames and signature, or with a byte appended or cut, is refused by
// hsmenv and by the Go ESDK alike, for messages either one made under both
// suites. The unaltered message opens in both, so the failures are the
// alterations'.
func TestTamper(t *testing.T) {
	s := goSDK(t)
	k := keys(t, "aes256")[0]
	kr := envelope.NewKeyring(k.kek)
	ec := envelope.EncryptionContext{"purpose": "tamper", "ключ": "値"}
	pt := randBytes(100)
	const frame = 64
	for _, suite := range suites {
		for _, maker := range []string{"go", "hsmenv"} {
			t.Run(fmt.Sprintf("%v/%s-encrypts", suite, maker), func(t *testing.T) {
				t.Parallel()
				var msg []byte
				if maker == "go" {
					msg = s.encrypt(t, pt, k.kr, nil, suite, frame, ec)
				} else {
					var err error
					if msg, err = envelope.Encrypt(context.Background(), pt, kr, envelope.EncryptOptions{Suite: suite, FrameSize: frame, Context: ec}); err != nil {
						t.Fatal(err)
					}
				}
				hsmenvOpens(t, msg, pt, kr, suite, frame, ec, envelope.DecryptOptions{})
				goOpens(t, s, msg, pt, k.kr, nil, ec, ec)
				h, err := envelope.ParseHeader(bytes.NewReader(msg))
				if err != nil {
					t.Fatal(err)
				}
				// Every byte of unsigned messages; every 7th of signed ones,
				// whose decrypt costs the Go ESDK about 60 ms under -race.
				stride := 1
				if suite.Signed() {
					stride = 7
				}
				offsets := []int{h.Size() - 17, h.Size() - 1, h.Size(), len(msg) - 1}
				for off := 0; off < len(msg); off += stride {
					offsets = append(offsets, off)
				}
				slices.Sort(offsets)
				refused := func(what string, bad []byte) {
					t.Helper()
					_, _, herr := envelope.Decrypt(context.Background(), bad, kr, envelope.DecryptOptions{})
					_, gerr := s.decrypt(bad, k.kr, nil, nil)
					if herr == nil || gerr == nil {
						t.Errorf("%s (message of %d bytes, header %d): hsmenv: %v; Go ESDK: %v", what, len(msg), h.Size(), herr, gerr)
					}
				}
				for _, off := range slices.Compact(offsets) {
					bad := slices.Clone(msg)
					bad[off] ^= 0x01
					refused(fmt.Sprintf("byte %d flipped", off), bad)
				}
				// Both also refuse a byte after the end (the JS SDK ignores
				// it for unsigned suites) and a message one byte short.
				refused("a byte appended", append(slices.Clone(msg), 0))
				refused("the last byte cut", msg[:len(msg)-1])
			})
		}
	}
}
