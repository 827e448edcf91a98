// Package armor is a strict, streaming ASCII armor for hsmenv messages: the
// binary message in standard padded base64, 64 columns a line, between
// the lines Begin and End (RFC 7468's strict textual encoding, with its own
// label and no headers).
//
// Exactly one armored text is accepted for each message: besides what
// NewWriter writes, a reader accepts only up to 1024 bytes of white space
// (space, tab, CR, LF) before the Begin line and after the End line, CRLF
// instead of LF at the end of any line, and no newline after the End line.
package armor

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	// Begin is the first line of an armored message.
	Begin = "-----BEGIN HSMENV ENCRYPTED MESSAGE-----"
	// End is the last line of an armored message.
	End = "-----END HSMENV ENCRYPTED MESSAGE-----"

	// PeekSize is how many leading bytes of a file IsArmored needs to
	// recognise every armored message NewReader accepts.
	PeekSize = maxSpace + len(Begin)
)

const (
	columns      = 64                  // base64 characters a full line
	bytesPerLine = columns / 4 * 3     // decoded bytes a full line
	maxSpace     = 1024                // white space allowed before Begin and after End
	whitespace   = " \t\r\n"           // what counts as white space there
	readBuffer   = 16 << 10            // bounds a line before it is read
	writeBuffer  = 256 * (columns + 1) // encoded lines given to dst at once
)

// ErrArmor is wrapped by every error a reader returns for input that is not
// one well-formed armored message.
var ErrArmor = errors.New("armor")

// strict decodes base64 only in its canonical form (zero padding bits).
var strict = base64.StdEncoding.Strict()

func armorError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrArmor}, args...)...)
}

// IsArmored reports whether prefix, the start of a file, begins with the
// Begin line after at most 1024 bytes of white space. PeekSize bytes
// suffice: a shorter prefix is enough when the file is shorter.
func IsArmored(prefix []byte) bool {
	rest := bytes.TrimLeft(prefix, whitespace)
	return len(prefix)-len(rest) <= maxSpace && bytes.HasPrefix(rest, []byte(Begin))
}

// NewWriter returns a writer that armors what is written to it and writes
// the text to dst: the Begin line first, then every complete 64-column line
// before each Write returns. Close writes the last, partial line and the
// End line, each line ending in LF; it does not close dst. After an error
// from dst every call returns that error.
func NewWriter(dst io.Writer) io.WriteCloser {
	return &writer{dst: dst}
}

type writer struct {
	dst     io.Writer
	started bool
	closed  bool
	pending []byte // less than a line of input not yet encoded
	out     []byte // encoded text not yet given to dst
	err     error
}

var errWriterClosed = errors.New("armor: write after close")

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errWriterClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	if len(w.pending) > 0 {
		take := min(bytesPerLine-len(w.pending), len(p))
		w.pending = append(w.pending, p[:take]...)
		p = p[take:]
		if len(w.pending) < bytesPerLine {
			return n, nil
		}
		w.line(w.pending)
		w.pending = w.pending[:0]
	}
	for len(p) >= bytesPerLine {
		w.line(p[:bytesPerLine])
		p = p[bytesPerLine:]
		if len(w.out) >= writeBuffer {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	w.pending = append(w.pending, p...)
	if err := w.flush(); err != nil {
		return 0, err
	}
	return n, nil
}

// Close writes the remaining input and the End line. Closing twice is an
// error.
func (w *writer) Close() error {
	if w.closed {
		return errWriterClosed
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if len(w.pending) > 0 {
		w.line(w.pending)
	}
	w.begin()
	w.out = append(w.out, End+"\n"...)
	return w.flush()
}

// begin adds the Begin line to the output, the first time.
func (w *writer) begin() {
	if !w.started {
		w.out = append(w.out, Begin+"\n"...)
		w.started = true
	}
}

// line adds the line encoding b (at most bytesPerLine bytes).
func (w *writer) line(b []byte) {
	w.begin()
	w.out = base64.StdEncoding.AppendEncode(w.out, b)
	w.out = append(w.out, '\n')
}

func (w *writer) flush() error {
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.out)
	w.out = w.out[:0]
	w.err = err
	return err
}

// NewReader returns a reader of the message armored in src. It returns
// io.EOF only after it has read the End line and at most 1024 bytes of
// white space up to the end of src, so a truncated text is an error, not a
// shorter message. Any other input gives an error wrapping ErrArmor that
// names the line at fault; the bytes read before it are a prefix of what
// that line would have continued, and since the message inside is
// authenticated they cannot pass for a whole message. A line is read into a
// bounded buffer, so input without newlines costs no more memory than any
// other.
func NewReader(src io.Reader) io.Reader {
	return &reader{br: bufio.NewReaderSize(src, readBuffer)}
}

type reader struct {
	br      *bufio.Reader
	line    int // number of the last line read, from 1
	started bool
	buf     [bytesPerLine]byte
	unread  []byte // decoded, not yet returned; backed by buf
	err     error  // sticky; io.EOF after a good End
}

func (r *reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.unread) > 0 {
			c := copy(p[n:], r.unread)
			r.unread = r.unread[c:]
			n += c
			continue
		}
		if r.err != nil || (n > 0 && !r.lineBuffered()) {
			break
		}
		r.err = r.next()
	}
	if n > 0 {
		return n, nil
	}
	return 0, r.err
}

// lineBuffered reports whether a whole line of at most a full line's
// length is already buffered, so next would not wait for src.
func (r *reader) lineBuffered() bool {
	b, _ := r.br.Peek(min(r.br.Buffered(), columns+2))
	return bytes.IndexByte(b, '\n') >= 0
}

// next decodes the next line into unread; it returns io.EOF when the text
// ended well, with nothing or the last line's bytes in unread.
func (r *reader) next() error {
	if !r.started {
		if err := r.readBegin(); err != nil {
			return err
		}
		r.started = true
	}
	line, err := r.readLine()
	if err != nil {
		return err
	}
	if isEnd(line) {
		return r.readEnd(line)
	}
	n, err := r.decode(line)
	if err != nil {
		return err
	}
	if n == bytesPerLine {
		r.unread = r.buf[:n]
		return nil
	}
	// A short line is the last: the End line must follow.
	short, cols := r.line, len(line)
	line, err = r.readLine()
	if err != nil {
		return err
	}
	switch {
	case isEnd(line):
	case cols == columns:
		return armorError("line %d ends in padding but is not the last", short)
	default:
		return armorError("line %d is %d columns but not the last, want %d", short, cols, columns)
	}
	if err := r.readEnd(line); err != io.EOF {
		return err
	}
	r.unread = r.buf[:n]
	return io.EOF
}

// readBegin skips the leading white space and reads the Begin line.
func (r *reader) readBegin() error {
	for skipped := 0; ; skipped++ {
		c, err := r.br.ReadByte()
		if err == io.EOF {
			if skipped == 0 {
				return armorError("the input is empty")
			}
			return armorError("no %s line, only white space", Begin)
		}
		if err != nil {
			return err
		}
		if strings.IndexByte(whitespace, c) < 0 {
			r.br.UnreadByte()
			break
		}
		if skipped == maxSpace {
			return armorError("more than %d bytes of white space before the %s line", maxSpace, Begin)
		}
		if c == '\n' {
			r.line++
		}
	}
	line, err := r.readLine()
	if errors.Is(err, ErrArmor) || err == nil && string(line) != Begin {
		return armorError("line %d is not %s", r.line, Begin)
	}
	return err
}

// readEnd checks the End line and that only a little white space follows.
func (r *reader) readEnd(line []byte) error {
	if string(line) != End {
		return armorError("line %d is not %s", r.line, End)
	}
	rest, err := io.ReadAll(io.LimitReader(r.br, maxSpace+1))
	if err != nil {
		return err
	}
	if i := len(rest) - len(bytes.TrimLeft(rest, whitespace)); i < len(rest) {
		return armorError("line %d: text after the %s line", r.line+1+bytes.Count(rest[:i], []byte("\n")), End)
	}
	if len(rest) > maxSpace {
		return armorError("more than %d bytes of white space after the %s line", maxSpace, End)
	}
	return io.EOF
}

// readLine returns the next line without its LF or CRLF; the slice is
// valid until the next read from br.
func (r *reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	r.line++
	switch {
	case err == bufio.ErrBufferFull:
		return nil, armorError("line %d is more than %d columns, want %d", r.line, len(line), columns)
	case err == io.EOF && len(line) == 0:
		return nil, armorError("truncated after line %d, no %s line", r.line-1, End)
	case err != nil && err != io.EOF:
		return nil, err
	case err == io.EOF && !isEnd(line):
		// Only the End line may end the input without a newline.
		return nil, armorError("truncated in line %d, no %s line", r.line, End)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, armorError("line %d has a carriage return inside it", r.line)
	}
	return line, nil
}

// isEnd reports whether line is meant as the End line: no base64 line
// starts with a dash.
func isEnd(line []byte) bool { return len(line) > 0 && line[0] == '-' }

// decode decodes one base64 line into buf and returns its length.
func (r *reader) decode(line []byte) (int, error) {
	switch {
	case len(line) == 0:
		return 0, armorError("line %d is empty", r.line)
	case len(line) > columns:
		return 0, armorError("line %d is %d columns, want %d", r.line, len(line), columns)
	case len(line)%4 != 0:
		return 0, armorError("line %d is %d columns, not a multiple of 4", r.line, len(line))
	}
	n, err := strict.Decode(r.buf[:], line)
	if err == nil {
		return n, nil
	}
	if _, lax := base64.StdEncoding.Decode(r.buf[:], line); lax == nil {
		return 0, armorError("line %d ends in nonzero padding bits (not canonical base64)", r.line)
	}
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		return 0, armorError("line %d column %d is not base64", r.line, int(ce)+1)
	}
	return 0, armorError("line %d is not base64", r.line)
}
