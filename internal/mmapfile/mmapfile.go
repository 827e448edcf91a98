// Package mmapfile reads a regular file through bounded, read-only shared
// memory mappings, so that bulk work (sealing or opening frames) can run on
// the bytes of the page cache without copying them into buffers first.
//
// A File maps the file in aligned windows of Window bytes; each window's
// mapping reaches Overlap bytes into the next one, so that a view of at most
// Overlap bytes that starts in a window and crosses its end is still one
// contiguous slice of that window's mapping. A view that fits no window (it
// is longer, crosses the end of its window by more than Overlap, or lies
// behind the furthest window already in use) gets a mapping of its own,
// exactly its pages. Windows are reference-counted: a window is unmapped
// when its last view is released and views have moved on to a later window;
// at most one window (the furthest) is kept mapped while idle.
//
// The bytes mapped at any time, and so the file pages a File can add to the
// resident set, never exceed MaxMapped: a View that would pass it waits
// until released views make room, and a View larger than MaxMapped fails.
//
// # Truncation
//
// If another process truncates the file while it is mapped, touching a
// mapped page past the new end raises SIGBUS, which the Go runtime turns
// into a fatal error ("unexpected fault address"), not a panic. Code that
// touches the bytes of a view should run inside [File.Guard], which turns
// such a fault into an error wrapping [ErrTruncated] (it sets
// debug.SetPanicOnFault for its goroutine). Views taken after the file
// shrank fail at View time when the shrink is visible to the kernel's
// population of the view's pages (see Options.NoPopulate), or at the first
// touch inside Guard. The size is taken once, at Open: a file that grows
// later is seen at its size at Open.
package mmapfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Defaults of Options, chosen by measurement (internal/ceiling, and the
// pipeline comparison described in the package's tests): see Options.
const (
	DefaultWindow    = 8 << 20
	DefaultOverlap   = 1 << 20
	DefaultMaxMapped = 32 << 20
)

var (
	// ErrNotRegular is returned by Open for anything but a regular file
	// (pipes, character devices, sockets, directories): callers fall back
	// to streaming.
	ErrNotRegular = errors.New("mmapfile: not a regular file")
	// ErrUnsupported is returned by Open on platforms without the mapping
	// support this package uses (anything but Linux).
	ErrUnsupported = errors.New("mmapfile: memory mapping not supported on this platform")
	// ErrTruncated reports that the file is shorter than its size at Open:
	// it was truncated while mapped (a fault caught by Guard, a failed
	// population of a view, or a short ReadAt).
	ErrTruncated = errors.New("mmapfile: the file shrank while in use")
	// ErrTooLarge is returned by View for a view that could never fit under
	// MaxMapped.
	ErrTooLarge = errors.New("mmapfile: view larger than the mapping bound")
	// ErrRange is returned by View for a range outside [0, Size()).
	ErrRange = errors.New("mmapfile: range outside the file")
	// ErrClosed is returned by View and ReadAt after Close.
	ErrClosed = errors.New("mmapfile: file closed")
)

// Options tune a File. The zero value gives the defaults.
type Options struct {
	// Window is the step of the aligned windows, in bytes, rounded up to a
	// multiple of the page size (default DefaultWindow, 8 MiB: on the
	// development machine 2 to 16 MiB perform alike, within noise; smaller
	// windows mean more mmap and munmap calls, larger ones more resident
	// pages).
	Window int
	// Overlap is how far each window's mapping reaches into the next
	// window, rounded up to a multiple of the page size (default
	// DefaultOverlap, 1 MiB): views of at most Overlap bytes never need a
	// mapping of their own, whatever their alignment. Overlap pages are
	// only made resident by the views that use them.
	Overlap int
	// MaxMapped bounds the bytes mapped at once (default DefaultMaxMapped,
	// 32 MiB). It must hold at least one window with its overlap.
	MaxMapped int64
	// NoPopulate leaves the pages of a view to be faulted in when first
	// touched. By default View populates the page tables of the view's
	// range (madvise MADV_POPULATE_READ, Linux 5.14 and later; ignored
	// where unsupported) in the calling goroutine: one system call instead
	// of a page fault every 16 pages, and a file that shrank below the
	// view is reported by View as ErrTruncated instead of by a fault.
	NoPopulate bool
	// Experimental, for measurement.
	PopulateView, PopulateWindow, Sequential bool
}

// File is a regular file read through memory mappings. Its methods are safe
// for concurrent use.
type File struct {
	fd   *os.File // a duplicate of the caller's descriptor, closed by Close
	size int64

	window, overlap int64
	maxMapped       int64
	populate        bool
	popWindow, seq  bool

	closedFlag atomic.Bool // for ReadAt, which takes no lock

	mu       sync.Mutex
	cond     sync.Cond
	closed   bool
	windows  map[int64]*mapping // by window index: mapping or mapped
	live     map[*mapping]struct{}
	// frontier is the highest offset asked for by View since the views
	// last jumped back by more than a window (a new pass over the file):
	// its window is the one kept mapped while idle.
	frontier int64
	mapped   int64 // bytes mapped, being mapped or being unmapped
	stats    Stats
}

// mapping is one mmap'ed range of the file: a window or a single view's.
type mapping struct {
	off   int64  // file offset of data[0]; a multiple of the page size
	n     int64  // bytes mapped from off
	size  int64  // n rounded up to pages: what counts towards MaxMapped
	win   int64  // window index, or -1 for a mapping of its own
	data  []byte // set once mapped
	refs  int    // views not yet released (and, while mapping, its maker)
	ready bool   // data is valid
	gone  bool   // taken out of windows: unmapped when its views are released
}

// Stats describe a File's mappings so far.
type Stats struct {
	// Mapped is the bytes mapped now (including mappings being made or
	// removed).
	Mapped int64
	// PeakMapped is the most bytes mapped at once since Open.
	PeakMapped int64
	// Windows counts window mappings made; Exact counts mappings made for
	// one view; Waits counts times a View waited for room under MaxMapped.
	Windows, Exact, Waits int64
}

// Open maps nothing yet and returns a File reading f's contents up to its
// size now. f must be a regular file opened for reading; anything else
// fails with an error wrapping ErrNotRegular (or ErrUnsupported on
// platforms other than Linux), so that callers can fall back to streaming.
// Open duplicates f's descriptor: the caller may close f at any time; Close
// releases the duplicate.
func Open(f *os.File) (*File, error) { return OpenOptions(f, Options{}) }

// OpenOptions is Open with tuning options; see Options for the defaults of
// zero fields. It fails for a negative field, or a MaxMapped smaller than
// one window and its overlap.
func OpenOptions(f *os.File, opts Options) (*File, error) {
	if opts.Window < 0 || opts.Overlap < 0 || opts.MaxMapped < 0 {
		return nil, fmt.Errorf("mmapfile: negative option in %+v", opts)
	}
	page := int64(pageSize())
	win := roundUp(int64(orDefault(opts.Window, DefaultWindow)), page)
	overlap := roundUp(int64(orDefault(opts.Overlap, DefaultOverlap)), page)
	maxMapped := opts.MaxMapped
	if maxMapped == 0 {
		maxMapped = DefaultMaxMapped
	}
	if maxMapped < win+overlap {
		return nil, fmt.Errorf("mmapfile: MaxMapped %d is smaller than a window and its overlap (%d)", maxMapped, win+overlap)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mmapfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %v", ErrNotRegular, f.Name(), fi.Mode().Type())
	}
	fd, err := dupFile(f)
	if err != nil {
		return nil, err
	}
	// The size from the duplicate, after the check: what the mappings see.
	if fi, err = fd.Stat(); err != nil {
		fd.Close()
		return nil, fmt.Errorf("mmapfile: %w", err)
	}
	m := &File{fd: fd, size: fi.Size(), window: win, overlap: overlap, maxMapped: maxMapped,
		populate: opts.PopulateView, popWindow: opts.PopulateWindow, seq: opts.Sequential, windows: map[int64]*mapping{}, live: map[*mapping]struct{}{}}
	m.cond.L = &m.mu
	return m, nil
}

// Size returns the file's size at Open: views and reads cover [0, Size()).
func (f *File) Size() int64 { return f.size }

// Stats returns counters of the mappings made so far.
func (f *File) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Mapped = f.mapped
	return s
}

// ReadAt reads len(p) bytes at off with pread (io.ReaderAt), never past
// Size(): a read that reaches Size() returns io.EOF with the bytes before
// it. A file that shrank meanwhile gives an error wrapping both ErrTruncated
// and io.ErrUnexpectedEOF.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.closedFlag.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: read at %d", ErrRange, off)
	}
	if off >= f.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := p
	if rest := f.size - off; int64(len(p)) > rest {
		want = p[:rest]
	}
	n, err := f.fd.ReadAt(want, off)
	switch {
	case err == io.EOF:
		return n, fmt.Errorf("%w: %d bytes at %d, the file ended at %d: %w", ErrTruncated, len(want), off, off+int64(n), io.ErrUnexpectedEOF)
	case err != nil:
		if f.closedFlag.Load() {
			return n, ErrClosed
		}
		return n, fmt.Errorf("mmapfile: %w", err)
	case len(want) < len(p):
		return n, io.EOF
	}
	return n, nil
}

// View returns the file's bytes [off, off+n) straight from a read-only
// shared mapping, and the function that releases them. The slice stays
// valid, and must not be used after, until release is called; it must not
// be written to (a write faults). release may be called more than once and
// from any goroutine: only the first call counts. Views may be taken and
// released concurrently, in any order; mappings are made for views that
// come in roughly increasing offset order (see the package comment).
//
// If mapping the view would pass MaxMapped, View waits until released views
// make room: a goroutine that waits for a View while it holds views whose
// release depends on that View returning can wait forever. A view larger
// than MaxMapped (pages rounded) fails with ErrTooLarge, one outside
// [0, Size()) with ErrRange, and any View after Close with ErrClosed. A
// view of zero bytes is an empty slice. Touch the bytes inside Guard (see
// the package comment on truncation).
func (f *File) View(off int64, n int) (b []byte, release func(), err error) {
	if off < 0 || n < 0 || off > f.size || int64(n) > f.size-off {
		return nil, nil, fmt.Errorf("%w: %d bytes at %d, file of %d", ErrRange, n, off, f.size)
	}
	page := int64(pageSize())
	if need := roundUp(off+int64(n), page) - off/page*page; need > f.maxMapped {
		return nil, nil, fmt.Errorf("%w: %d bytes at %d need %d mapped, the bound is %d", ErrTooLarge, n, off, need, f.maxMapped)
	}
	if n == 0 {
		if f.closedFlag.Load() {
			return nil, nil, ErrClosed
		}
		return []byte{}, func() {}, nil
	}
	m, err := f.acquire(off, int64(n))
	if err != nil {
		return nil, nil, err
	}
	i, j := off-m.off, off-m.off+int64(n)
	b = m.data[i:j:j]
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			f.release(m)
		}
	}
	if f.populate {
		// From the page holding b's start (m.data starts on a page).
		if err := populate(m.data[i/page*page : j]); err != nil {
			release()
			return nil, nil, f.populateError(off, n, err)
		}
	}
	return b, release, nil
}

// acquire returns a ready mapping holding [off, off+n) with a reference
// taken for the caller.
func (f *File) acquire(off, n int64) (*mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off > f.frontier || off/f.window < f.frontier/f.window-1 {
		f.frontier = off
	}
	waited := false
	for {
		if f.closed {
			return nil, ErrClosed
		}
		// Idle windows other than the frontier's are of no more use.
		if f.evict(func(m *mapping) bool { return m.win != f.frontier/f.window }) {
			continue // the lock was let go: look again
		}
		k := off / f.window
		inWindow := off+n <= k*f.window+f.window+f.overlap
		if inWindow {
			if m := f.windows[k]; m != nil {
				if !m.ready {
					f.cond.Wait() // another goroutine is mapping it
					continue
				}
				m.refs++
				return m, nil
			}
		}
		var m *mapping
		if inWindow && k >= f.frontier/f.window {
			start := k * f.window
			m = &mapping{off: start, n: min(f.window+f.overlap, f.size-start), win: k}
		} else {
			// A view that fits no window, or a straggler behind the
			// frontier: exactly its pages, rather than a whole window again.
			start := off / int64(pageSize()) * int64(pageSize())
			m = &mapping{off: start, n: off + n - start, win: -1}
		}
		m.size = roundUp(m.n, int64(pageSize()))
		if f.mapped+m.size > f.maxMapped {
			// Make room from idle windows, else wait for releases.
			if f.evict(func(*mapping) bool { return true }) {
				continue
			}
			if !waited {
				f.stats.Waits++
				waited = true
			}
			f.cond.Wait()
			continue
		}
		f.mapped += m.size
		f.stats.PeakMapped = max(f.stats.PeakMapped, f.mapped)
		m.refs = 1
		if m.win >= 0 {
			f.windows[m.win] = m
			f.stats.Windows++
		} else {
			f.stats.Exact++
		}
		f.mu.Unlock()
		data, err := mmapRead(f.fd, m.off, int(m.n), f.popWindow && m.win >= 0, f.seq)
		f.mu.Lock()
		if err != nil {
			f.mapped -= m.size
			if m.win >= 0 {
				delete(f.windows, m.win)
			}
			f.cond.Broadcast()
			return nil, fmt.Errorf("mmapfile: mapping %d bytes at %d: %w", m.n, m.off, err)
		}
		m.data, m.ready = data, true
		f.live[m] = struct{}{}
		f.cond.Broadcast()
		return m, nil
	}
}

// evict unmaps the idle windows that pick selects, with f.mu held on entry
// and on return; it reports whether it let the lock go (then the caller's
// view of the state is stale).
func (f *File) evict(pick func(*mapping) bool) bool {
	var idle []*mapping
	for k, m := range f.windows {
		if m.ready && m.refs == 0 && pick(m) {
			m.gone = true
			delete(f.windows, k)
			idle = append(idle, m)
		}
	}
	if len(idle) == 0 {
		return false
	}
	f.mu.Unlock()
	for _, m := range idle {
		munmap(m.data) // the only error is EINVAL, for a range that is not ours
	}
	f.mu.Lock()
	for _, m := range idle {
		f.unmapped(m)
	}
	return true
}

// unmapped accounts for m's unmapping, with f.mu held.
func (f *File) unmapped(m *mapping) {
	f.mapped -= m.size
	delete(f.live, m)
	m.data = nil
	f.cond.Broadcast()
}

// release drops one reference to m; the last one unmaps it unless it is the
// furthest window (it is kept, idle, for the views still to come in it).
func (f *File) release(m *mapping) {
	f.mu.Lock()
	m.refs--
	if m.refs > 0 {
		f.mu.Unlock()
		return
	}
	if !f.closed && !m.gone && m.win == f.frontier/f.window {
		f.cond.Broadcast() // idle: a waiting View may evict it
		f.mu.Unlock()
		return
	}
	if !m.gone && m.win >= 0 {
		delete(f.windows, m.win)
	}
	m.gone = true
	f.mu.Unlock()
	munmap(m.data)
	f.mu.Lock()
	f.unmapped(m)
	f.mu.Unlock()
}

// Guard runs fn with debug.SetPanicOnFault set for the calling goroutine,
// and turns a memory fault at an address inside one of f's mappings (the
// SIGBUS of a page past the end of a file truncated while mapped) into an
// error wrapping ErrTruncated. Any other panic, including faults elsewhere,
// is re-raised. fn must touch the views in the goroutine that calls Guard:
// the setting is per goroutine, and a fault in another goroutine still
// kills the process. fn's own error is returned as is.
func (f *File) Guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if fe, ok := r.(interface{ Addr() uintptr }); ok {
			if off, ok := f.fileOffset(fe.Addr()); ok {
				err = fmt.Errorf("%w: a fault reading the mapped byte at offset %d (the file is %s now, %d bytes at Open)",
					ErrTruncated, off, f.sizeNow(), f.size)
				return
			}
		}
		panic(r)
	}()
	return fn()
}

// fileOffset maps an address inside one of f's live mappings to its file
// offset.
func (f *File) fileOffset(addr uintptr) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for m := range f.live {
		if len(m.data) == 0 {
			continue
		}
		start := sliceAddr(m.data)
		if addr >= start && addr-start < uintptr(len(m.data)) {
			return m.off + int64(addr-start), true
		}
	}
	return 0, false
}

// sizeNow describes the file's current size, for error messages.
func (f *File) sizeNow() string {
	fi, err := f.fd.Stat()
	if err != nil {
		return "of unknown size"
	}
	return fmt.Sprintf("%d bytes", fi.Size())
}

// populateError explains a failed population of a view's pages.
func (f *File) populateError(off int64, n int, err error) error {
	return fmt.Errorf("%w: reading %d bytes at %d (the file is %s now, %d bytes at Open): %w", ErrTruncated, n, off, f.sizeNow(), f.size, err)
}

// Close releases the duplicated descriptor and unmaps every mapping no view
// holds. A mapping with views still outstanding stays valid for them and is
// unmapped when the last one is released: Close never pulls memory from
// under a live view. After Close, View and ReadAt fail with ErrClosed (Views
// waiting for room return it too). Close is idempotent; it returns the
// error of closing the descriptor, the first time.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.closedFlag.Store(true)
	f.evict(func(*mapping) bool { return true })
	f.cond.Broadcast()
	f.mu.Unlock()
	if err := f.fd.Close(); err != nil {
		return fmt.Errorf("mmapfile: %w", err)
	}
	return nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
