package goesdk_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// frameCase is a frame length and the plaintext sizes tried with it.
type frameCase struct {
	frame int
	sizes []int
}

// frameCases: for each frame length the sizes 0, 1, frame-1, frame,
// frame+1, 100 KiB and 1 MiB. Frame length 1 stops at 1000 bytes: the Go
// ESDK spends about 0.3 ms per frame under -race (100 KiB would take 30 s
// each way).
var frameCases = func() []frameCase {
	out := []frameCase{{1, []int{0, 1, 2, 1000}}}
	for _, f := range []int{512, 4096, 65536} {
		out = append(out, frameCase{f, []int{0, 1, f - 1, f, f + 1, 100 << 10, 1 << 20}})
	}
	for i := range out {
		slices.Sort(out[i].sizes)
		out[i].sizes = slices.Compact(out[i].sizes)
	}
	return out
}()

// rawCase is one message of the raw-key matrix.
type rawCase struct {
	key         *keyDef
	suite       envelope.SuiteID
	frame, size int
	cc          ctxCase
}

func (c rawCase) String() string {
	return fmt.Sprintf("%s/%v/frame%d/size%d/%s", c.key.label, c.suite, c.frame, c.size, c.cc.name)
}

// rawMatrix is every (frame, size) pair under both suites and both
// contexts, with the raw keys in turn (offset shifts the rotation, so the
// two directions pair keys and cases differently); each key meets every
// suite and context.
func rawMatrix(t *testing.T, offset int) []rawCase {
	all := keys(t, rawLabels...)
	var out []rawCase
	n := 0
	for _, fc := range frameCases {
		for _, size := range fc.sizes {
			for _, suite := range suites {
				for _, cc := range contexts {
					key := all[(n+n/4+offset)%len(all)]
					out = append(out, rawCase{key, suite, fc.frame, size, cc})
					n++
				}
			}
		}
	}
	return out
}

// TestRawGoEncryptsHsmenvDecrypts: the Go ESDK encrypts with its raw AES
// and raw RSA keyrings (every padding), both suites, every frame length and
// size, the empty and a non-ASCII context; hsmenv reads the header it
// wrote and decrypts.
func TestRawGoEncryptsHsmenvDecrypts(t *testing.T) {
	s := goSDK(t)
	for _, c := range rawMatrix(t, 0) {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			pt := randBytes(c.size)
			msg := s.encrypt(t, pt, c.key.kr, nil, c.suite, c.frame, c.cc.ec)
			hsmenvOpens(t, msg, pt, envelope.NewKeyring(c.key.kek), c.suite, c.frame, c.cc.ec, envelope.DecryptOptions{RequiredContext: c.cc.ec})
		})
	}
}

// TestRawHsmenvEncryptsGoDecrypts: hsmenv encrypts over the same matrix;
// the Go ESDK decrypts with the context as its reproduced context, and
// reports the plaintext, suite and context.
func TestRawHsmenvEncryptsGoDecrypts(t *testing.T) {
	s := goSDK(t)
	for _, c := range rawMatrix(t, 3) {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			pt := randBytes(c.size)
			msg, err := envelope.Encrypt(context.Background(), pt, envelope.NewKeyring(c.key.kek),
				envelope.EncryptOptions{Suite: c.suite, FrameSize: c.frame, Context: c.cc.ec})
			if err != nil {
				t.Fatal(err)
			}
			goOpens(t, s, msg, pt, c.key.kr, nil, c.cc.ec, c.cc.ec)
		})
	}
}
