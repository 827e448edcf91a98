package main

import (
	"bufio"
	"io"
	"os"

	"github.com/hsmenv/hsmenv/internal/armor"
)

// openMessage returns what the message in in is read through from its
// start, its size (-1 for a stream), and whether it is ASCII-armored: a
// regular file is peeked in place with ReadAt and read through in itself, a
// stream through a buffer that holds what was peeked.
func openMessage(in *os.File) (src io.Reader, size int64, armored bool, err error) {
	size = -1
	if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	if size >= 0 {
		p := make([]byte, min(size, int64(armor.PeekSize)))
		n, err := in.ReadAt(p, 0)
		if err != nil && err != io.EOF {
			return nil, 0, false, err
		}
		return in, size, armor.IsArmored(p[:n]), nil
	}
	br := bufio.NewReaderSize(in, armor.PeekSize)
	p, err := br.Peek(armor.PeekSize)
	if err != nil && err != io.EOF {
		return nil, 0, false, err
	}
	return br, size, armor.IsArmored(p), nil
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
