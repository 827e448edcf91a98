package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/outfile"
)

// headerEDK is one EDK in `inspect --json` and in --metadata-output.
type headerEDK struct {
	ProviderID   string `json:"provider_id"`
	ProviderInfo []byte `json:"provider_info"` // base64
	// ProviderInfoText is the provider info as a string when all of it is
	// printable (a PKCS#11 or TPM key name), omitted otherwise.
	ProviderInfoText string `json:"provider_info_text,omitempty"`
	Ciphertext       int    `json:"ciphertext_len"`
}

// headerObject is a message header as JSON: the object of `inspect --json`
// and the header fields of each --metadata-output line (docs/commands.md).
type headerObject struct {
	Version    int               `json:"version"`
	Suite      string            `json:"suite"`
	MessageID  string            `json:"message_id"`
	Framed     bool              `json:"framed"`
	FrameSize  uint32            `json:"frame_size"`
	Signed     bool              `json:"signed"`
	HeaderSize int               `json:"header_size"`
	Context    map[string]string `json:"context"`
	EDKs       []headerEDK       `json:"edks"`
	CommitKey  string            `json:"commit_key,omitempty"`
}

// newHeaderObject is the one conversion of a header to its JSON shape.
func newHeaderObject(h *envelope.Header) headerObject {
	o := headerObject{
		Version: int(h.Version), Suite: h.Suite.String(), MessageID: hex.EncodeToString(h.MessageID),
		Framed: h.Framed, FrameSize: h.FrameLength, Signed: h.Suite.Signed(), HeaderSize: h.Size(),
		Context: h.Context, CommitKey: hex.EncodeToString(h.CommitKey),
	}
	if o.Context == nil {
		o.Context = map[string]string{}
	}
	for _, e := range h.EDKs {
		d := headerEDK{ProviderID: e.ProviderID, ProviderInfo: e.ProviderInfo, Ciphertext: len(e.Ciphertext)}
		if printable(e.ProviderInfo) {
			d.ProviderInfoText = string(e.ProviderInfo)
		}
		o.EDKs = append(o.EDKs, d)
	}
	return o
}

// printable reports whether b is non-empty UTF-8 text without control
// characters.
func printable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
		b = b[n:]
	}
	return true
}

// fileRecord is one line of --metadata-output: what a command wrote for one
// file, written only once that file is committed.
type fileRecord struct {
	Mode   string `json:"mode"` // encrypt, decrypt or rewrap
	Input  string `json:"input"`
	Output string `json:"output"`
	headerObject
	// PlaintextSize is the plaintext read (encrypt) or written (decrypt;
	// with --range, the bytes of the range); absent for rewrap.
	PlaintextSize *int64 `json:"plaintext_size,omitempty"`
	// CiphertextSize is the message written (encrypt, rewrap) or read
	// (decrypt; with --range, the whole message file).
	CiphertextSize int64 `json:"ciphertext_size"`
}

// newRecord describes one committed file; plaintext < 0 means unknown.
func newRecord(mode string, j fileJob, h *envelope.Header, plaintext, ciphertext int64) fileRecord {
	r := fileRecord{Mode: mode, Input: j.in, Output: j.out, headerObject: newHeaderObject(h), CiphertextSize: ciphertext}
	if r.Output == "" {
		r.Output = "-"
	}
	if plaintext >= 0 {
		r.PlaintextSize = &plaintext
	}
	return r
}

// metaWriter writes --metadata-output: one JSON object a line, in the
// order files are committed. A file is written as an output is (temporary
// file, put in place at the end), so a run that commits no file leaves no
// metadata file; standard output gets each line as it comes.
type metaWriter struct {
	mu  sync.Mutex
	out *outfile.File
	n   int
}

// openMeta prepares the --metadata-output path; "" means none (nil).
func openMeta(path string, force bool) (*metaWriter, error) {
	if path == "" {
		return nil, nil
	}
	out, err := outfile.Create(path, force, "")
	if err != nil {
		return nil, fmt.Errorf("--metadata-output: %w", err)
	}
	return &metaWriter{out: out}, nil
}

// add writes the line of a committed file.
func (m *metaWriter) add(r fileRecord) error {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.out.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("--metadata-output: %w", err)
	}
	m.n++
	return nil
}

// finish puts the metadata file in place if it holds a line, and removes
// it otherwise.
func (m *metaWriter) finish() error {
	if m == nil {
		return nil
	}
	if m.n == 0 {
		m.out.Abort()
		return nil
	}
	if err := m.out.Commit(); err != nil {
		return fmt.Errorf("--metadata-output: %w", err)
	}
	return nil
}

// abort removes the metadata file unless finish put it in place.
func (m *metaWriter) abort() {
	if m != nil {
		m.out.Abort()
	}
}

// bothStdout refuses -o and --metadata-output both on standard output.
func bothStdout(batch bool, outTo, meta string) error {
	if !batch && isStdout(outTo) && meta != "" && isStdout(meta) {
		return usagef("-o and --metadata-output both write to standard output: give one of them a file")
	}
	return nil
}

// isStdout reports whether an -o value means standard output.
func isStdout(path string) bool {
	return path == "" || path == "-" || filepath.Clean(path) == "/dev/stdout"
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
