package main

import (
	"io"
	"os"
	"time"

	"github.com/hsmenv/hsmenv/internal/mmapfile"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressMin is the input size from which a bar is worth showing.
const progressMin = 32 << 20

// quiet is set by --quiet.
var quiet bool

// newProgress returns a progress bar with throughput on stderr for an input
// of size bytes (-1: unknown), or nil when stderr is not a terminal, the
// work is short, or --quiet was given.
func newProgress(size int64, what string) *progressbar.ProgressBar {
	if quiet || !term.IsTerminal(int(os.Stderr.Fd())) || (size >= 0 && size < progressMin) {
		return nil
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionFullWidth(),
	)
}

// finishProgress clears the bar.
func finishProgress(bar *progressbar.ProgressBar) {
	if bar != nil {
		bar.Finish()
	}
}

// progressReader counts what a sequential reader yields.
type progressReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.bar.Add(n)
	return n, err
}

// progressReaderAt counts what parallel ReadAt calls yield (the bar locks).
type progressReaderAt struct {
	r   io.ReaderAt
	bar *progressbar.ProgressBar
}

func (p progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	p.bar.Add(n)
	return n, err
}

// progressFile counts what a memory-mapped file lends and yields, keeping
// the View and Guard methods the encrypter and decrypter read it through.
type progressFile struct {
	*mmapfile.File
	bar *progressbar.ProgressBar
}

func (p progressFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.File.ReadAt(b, off)
	p.bar.Add(n)
	return n, err
}

func (p progressFile) View(off int64, n int) ([]byte, func(), error) {
	b, release, err := p.File.View(off, n)
	if err == nil {
		p.bar.Add(n)
	}
	return b, release, err
}

// withProgress wraps r and ra (either may be nil) in counters for bar.
func withProgress(bar *progressbar.ProgressBar, r io.Reader, ra io.ReaderAt) (io.Reader, io.ReaderAt) {
	if bar == nil {
		return r, ra
	}
	if r != nil {
		r = progressReader{r, bar}
	}
	if m, ok := ra.(*mmapfile.File); ok {
		ra = progressFile{m, bar}
	} else if ra != nil {
		ra = progressReaderAt{ra, bar}
	}
	return r, ra
}
