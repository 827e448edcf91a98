// Package mmapfile reads a regular file through bounded, read-only shared
// memory mappings, so that bulk work (sealing or opening frames) runs on
// the bytes of the page cache without copying them into buffers first.
//
// # Windows
//
// A File maps the file in aligned windows of Window bytes (8 MiB by
// default). Each window's mapping reaches Overlap bytes (1 MiB) into the
// next window, so that a view of at most Overlap bytes that starts in a
// window and crosses its end is still one contiguous slice of that window's
// mapping; the overlap's pages become resident only if such a view touches
// them. A view that fits no window (longer than a window, or crossing its
// window's end by more than Overlap) gets a mapping of its own, exactly its
// pages; so does a straggler, a view whose window was already unmapped
// because views had moved past it.
//
// Windows are reference-counted. When its last view is released a window
// is unmapped, unless it is the window of the frontier: the furthest offset
// asked for since the views last jumped back by more than a window (a new
// pass over the file, such as a read of a message's last frame followed by
// its body from the start). That window stays mapped while idle, for the
// views still to come in it; at most one window is idle at any time.
//
// # Memory
//
// The bytes mapped at once (windows, their overlaps and single mappings,
// rounded up to pages) never exceed MaxMapped, 32 MiB by default: the
// mapped pages of the file that count in the process's resident set are at
// most that many. A View that would pass the bound first unmaps the idle
// window, then waits until released views make room; a View longer than
// the bound fails with ErrTooLarge. With the defaults, views of up to 1 MiB
// in increasing order from any number of goroutines keep two or three
// windows mapped.
//
// # Truncation
//
// If another process truncates the file while it is mapped, touching a
// mapped page past the new end raises SIGBUS, which the Go runtime turns
// into a fatal error ("unexpected fault address"), not a panic. Code that
// touches the bytes of a view should run inside [File.Guard], which turns
// such a fault into an error wrapping [ErrTruncated] (it sets
// debug.SetPanicOnFault for its goroutine). The size is taken once, at
// Open: views cover that size; bytes a file gains later are not seen.
//
// # Measurements
//
// On the 2-core development VM (Linux 6.18), sealing a page-cached 1 GiB
// file through an envelope-like pipeline: 2 to 32 MiB windows perform
// alike, within noise, and as fast as one mapping of the whole file when
// that mapping's munmap is counted (unmapping costs about 150 ns a page,
// whether by window or at the end). Populating a view's page tables
// beforehand (madvise MADV_POPULATE_READ) cost about 20% of the CPU time,
// twice what the page faults it saves cost (the kernel maps 16 pages a
// fault); MAP_POPULATE on each window was slower still, and
// MADV_SEQUENTIAL changed nothing for a page-cached file. None is used.
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

// Defaults of Options: see the package comment and Options.
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
	// it was truncated while in use (a fault caught by Guard, or a short
	// ReadAt).
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
	// multiple of the page size (default DefaultWindow, 8 MiB: smaller
	// windows mean more mmap and munmap calls, larger ones more resident
	// pages, and fewer windows under MaxMapped).
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
}

// File is a regular file read through memory mappings. Its methods are safe
// for concurrent use.
type File struct {
	fd   *os.File // a duplicate of the caller's descriptor, closed by Close
	size int64

	window, overlap int64
	maxMapped       int64

	closedFlag atomic.Bool // for ReadAt, which takes no lock

	mu      sync.Mutex
	cond    sync.Cond
	closed  bool
	windows map[int64]*mapping // by window index: mapping or mapped
	live    map[*mapping]struct{}
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
	// one view; Waits counts Views that waited for room under MaxMapped.
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
		windows: map[int64]*mapping{}, live: map[*mapping]struct{}{}}
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
	return b, func() {
		if once.CompareAndSwap(false, true) {
			f.release(m)
		}
	}, nil
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
		data, err := mmapRead(f.fd, m.off, int(m.n))
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

// release drops one reference to m; the last one unmaps it, unless it is
// the frontier's window (kept, idle, for the views still to come in it).
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
