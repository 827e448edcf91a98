package main

import (
	"bufio"
	"io"
	"os"

	"github.com/hsmenv/hsmenv/internal/armor"
)

// peekMessage tells whether the message in in (size bytes, -1 for a
// stream) is ASCII-armored, and returns the reader its bytes are to be read
// through from the start: in itself for a file (peeked in place with
// ReadAt), or a buffer over the stream holding what was peeked.
func peekMessage(in *os.File, size int64) (io.Reader, bool, error) {
	if size >= 0 {
		p := make([]byte, min(size, int64(armor.PeekSize)))
		n, err := in.ReadAt(p, 0)
		if err != nil && err != io.EOF {
			return nil, false, err
		}
		return in, armor.IsArmored(p[:n]), nil
	}
	br := bufio.NewReaderSize(in, armor.PeekSize)
	p, err := br.Peek(armor.PeekSize)
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	return br, armor.IsArmored(p), nil
}

// unarmored returns the reader of the binary message behind r: r itself,
// or its armor decoded.
func unarmored(r io.Reader, armored bool) io.Reader {
	if armored {
		return armor.NewReader(r)
	}
	return r
}

// armoredWriter returns what the binary message is written through: w
// itself, or an armor encoder in front of it. finish ends the armor (a
// no-op without): call it after the message's last byte, before commit.
func armoredWriter(w io.Writer, armored bool) (dst io.Writer, finish func() error) {
	if !armored {
		return w, func() error { return nil }
	}
	aw := armor.NewWriter(w)
	return aw, aw.Close
}
