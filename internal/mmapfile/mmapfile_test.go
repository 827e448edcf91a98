//go:build linux

package mmapfile

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// small options make window boundaries frequent: 64 KiB windows reaching
// 16 KiB into the next, at most 256 KiB mapped.
var small = Options{Window: 64 << 10, Overlap: 16 << 10, MaxMapped: 256 << 10}

// testFile writes n pseudo-random bytes to a new file and returns it open
// for reading, with its contents.
func testFile(t testing.TB, n int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

func openT(t testing.TB, f *os.File, opts Options) *File {
	t.Helper()
	m, err := OpenOptions(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// checkView compares View(off, n) with want and releases it.
func checkView(t testing.TB, m *File, want []byte, off int64, n int) {
	t.Helper()
	b, release, err := m.View(off, n)
	if err != nil {
		t.Fatalf("View(%d, %d): %v", off, n, err)
	}
	defer release()
	if len(b) != n || cap(b) != n {
		t.Fatalf("View(%d, %d): len %d cap %d", off, n, len(b), cap(b))
	}
	if !bytes.Equal(b, want[off:off+int64(n)]) {
		t.Fatalf("View(%d, %d): contents differ from the file", off, n)
	}
}

func TestViewContents(t *testing.T) {
	const size = 1<<20 + 12345 // not a multiple of pages or windows
	f, data := testFile(t, size)
	for _, opts := range []Options{small, {}, {Window: 64 << 10, Overlap: 4096, MaxMapped: 1 << 20}} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			m := openT(t, f, opts)
			if m.Size() != size {
				t.Fatalf("Size %d, want %d", m.Size(), size)
			}
			w := m.window
			// Edges: window boundaries, their overlap, views that span two
			// windows, page edges, the end of the file.
			cases := []struct {
				off int64
				n   int
			}{
				{0, 1}, {0, 4096}, {0, int(w)}, {w - 1, 1}, {w - 1, 2}, {w - 100, 200},
				{w - 10, int(m.overlap) + 10}, {w - 10, int(m.overlap) + 11}, {w, int(w + m.overlap)},
				{w + 1, int(w + m.overlap)}, {3*w - 5000, int(2 * w)}, {4095, 2}, {size - 1, 1},
				{size - 5000, 5000}, {0, size}, {size, 0}, {123, 0},
			}
			for _, c := range cases {
				if int64(c.n) > m.maxMapped || c.off+int64(c.n) > size {
					continue
				}
				checkView(t, m, data, c.off, c.n)
			}
			r := rand.New(rand.NewPCG(2, 3))
			for i := 0; i < 2000; i++ {
				n := 1 + r.IntN(int(min(m.maxMapped/2, size)))
				if i%3 == 0 {
					n = 1 + r.IntN(8192)
				}
				off := r.Int64N(size - int64(n) + 1)
				checkView(t, m, data, off, n)
			}
			if s := m.Stats(); s.Mapped > m.window+m.overlap || s.PeakMapped > m.maxMapped {
				t.Fatalf("after every view was released: %+v (bound %d)", s, m.maxMapped)
			}
		})
	}
}

// Views held at once, across windows and spans, stay correct while others
// come and go.
func TestViewsHeldTogether(t *testing.T) {
	f, data := testFile(t, 512<<10)
	m := openT(t, f, small)
	type held struct {
		off     int64
		b       []byte
		release func()
	}
	var hs []held
	for off := int64(60 << 10); off < 200<<10; off += 10 << 10 {
		b, rel, err := m.View(off, 10<<10)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, held{off, b, rel})
	}
	// Release out of order, checking the others each time.
	rand.New(rand.NewPCG(4, 5)).Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
	for i, h := range hs {
		for _, o := range hs[i:] {
			if !bytes.Equal(o.b, data[o.off:o.off+int64(len(o.b))]) {
				t.Fatalf("view at %d changed after releases", o.off)
			}
		}
		h.release()
	}
}

// Goroutines take views of consecutive ranges, as pipeline workers do, and
// hand them to releasers that let them go later, out of order. (No
// goroutine waits in View while it holds a view: see View on waiting.)
func TestConcurrentViews(t *testing.T) {
	f, data := testFile(t, 4<<20)
	for _, opts := range []Options{small, {Window: 256 << 10, Overlap: 64 << 10, MaxMapped: 1 << 20}} {
		m := openT(t, f, opts)
		var next sync.Mutex
		var cursor int64
		var wg, rwg sync.WaitGroup
		errs := make(chan error, 8)
		held := make(chan func(), 4)
		for r := 0; r < 3; r++ {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				rnd := rand.New(rand.NewPCG(uint64(r), 9))
				for rel := range held {
					if rnd.IntN(4) == 0 {
						time.Sleep(time.Duration(rnd.IntN(200)) * time.Microsecond)
					}
					rel()
				}
			}()
		}
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 7))
				for {
					n := int64(1 + r.IntN(48<<10))
					next.Lock()
					off := cursor
					if off+n > int64(len(data)) {
						n = int64(len(data)) - off
					}
					cursor += n
					next.Unlock()
					if n <= 0 {
						return
					}
					b, rel, err := m.View(off, int(n))
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(b, data[off:off+n]) {
						errs <- fmt.Errorf("view %d+%d differs", off, n)
						rel()
						return
					}
					held <- rel
				}
			}()
		}
		wg.Wait()
		close(held)
		rwg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		s := m.Stats()
		if s.PeakMapped > m.maxMapped {
			t.Fatalf("peak mapped %d above the bound %d", s.PeakMapped, m.maxMapped)
		}
		if s.Mapped > m.window+m.overlap {
			t.Fatalf("%d bytes still mapped after every view was released, more than one idle window", s.Mapped)
		}
		t.Logf("%+v: %+v", opts, s)
	}
}

// A large file streamed by several goroutines in batches keeps its mapped
// bytes under the bound, and so (honestly counted by the kernel) the
// process's resident set.
func TestStreamingBounded(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	path := filepath.Join(t.TempDir(), "sparse")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := openT(t, f, Options{})
	debug.FreeOSMemory()
	resetPeakRSS := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	rss0 := statusKiB(t, "VmHWM")
	const batch = 256 << 10
	var next sync.Mutex
	var cursor int64
	var wg sync.WaitGroup
	var bad error
	var badOnce sync.Once
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				off := cursor
				cursor += batch + 28 // unaligned, as frames of a message are
				next.Unlock()
				if off >= size {
					return
				}
				n := min(int64(batch+28), size-off)
				b, rel, err := m.View(off, int(n))
				if err != nil {
					badOnce.Do(func() { bad = err })
					return
				}
				var sum byte
				for i := 0; i < len(b); i += 4096 { // touch every page
					sum |= b[i]
				}
				rel()
				if sum != 0 {
					badOnce.Do(func() { bad = fmt.Errorf("a hole read %d at %d", sum, off) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	s := m.Stats()
	t.Logf("%d MiB streamed: %+v", size>>20, s)
	if s.PeakMapped > DefaultMaxMapped {
		t.Fatalf("peak mapped %d above the bound %d", s.PeakMapped, DefaultMaxMapped)
	}
	if s.Windows < size/DefaultWindow {
		t.Fatalf("%d windows mapped for %d bytes", s.Windows, size)
	}
	if resetPeakRSS && !raceEnabled {
		grew := statusKiB(t, "VmHWM") - rss0
		t.Logf("peak RSS grew by %d KiB", grew)
		// The mapped pages plus the test's own allocations.
		if limit := int64(DefaultMaxMapped>>10) + 8<<10; grew > limit {
			t.Fatalf("peak RSS grew by %d KiB streaming %d MiB, more than %d KiB", grew, size>>20, limit)
		}
	}
}

func statusKiB(t testing.TB, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// A view at the end of the file (a message's final frame read first), then
// a pass from the start: the pass still goes through windows, and the
// window at the end does not stay mapped.
func TestNewPass(t *testing.T) {
	f, data := testFile(t, 1<<20)
	m := openT(t, f, small)
	checkView(t, m, data, int64(len(data))-100, 100)
	for off := int64(0); off+10000 <= int64(len(data)); off += 10000 {
		checkView(t, m, data, off, 10000)
	}
	s := m.Stats()
	if s.Exact > 16 { // views crossing a window's overlap
		t.Fatalf("%+v: views of the pass were mapped one by one", s)
	}
	if s.Mapped > m.window+m.overlap {
		t.Fatalf("%+v: more than one idle window mapped", s)
	}
	// Backwards by one window is a straggler, not a new pass.
	checkView(t, m, data, int64(len(data))-m.window-100, 100)
	if s2 := m.Stats(); s2.Exact != s.Exact+1 || s2.Windows != s.Windows {
		t.Fatalf("%+v then %+v: a straggler did not get a mapping of its own", s, s2)
	}
}

// A View that would pass the bound waits for a release instead.
func TestViewWaitsForRoom(t *testing.T) {
	f, data := testFile(t, 1<<20)
	m := openT(t, f, small) // 256 KiB bound, windows of 80 KiB mapped
	var rels []func()
	// Three windows held (240 KiB): the fourth would pass 256 KiB.
	for k := int64(0); k < 3; k++ {
		_, rel, err := m.View(k*m.window, 100)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	got := make(chan error, 1)
	go func() {
		b, rel, err := m.View(3*m.window, 100)
		if err == nil {
			if !bytes.Equal(b, data[3*m.window:3*m.window+100]) {
				err = errors.New("contents differ")
			}
			rel()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("View returned (%v) while the bound was reached", err)
	case <-time.After(100 * time.Millisecond):
	}
	rels[1]()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("View still waiting after a window was released")
	}
	if s := m.Stats(); s.Waits != 1 || s.PeakMapped > m.maxMapped {
		t.Fatalf("stats %+v", s)
	}
	rels[0]()
	rels[2]()
}

func TestViewErrors(t *testing.T) {
	f, _ := testFile(t, 300<<10)
	m := openT(t, f, small)
	for _, c := range []struct {
		off  int64
		n    int
		want error
	}{
		{-1, 1, ErrRange}, {0, -1, ErrRange}, {300<<10 - 1, 2, ErrRange}, {300<<10 + 1, 0, ErrRange},
		{0, 256<<10 + 1, ErrTooLarge}, {4095, 256 << 10, ErrTooLarge}, // two pages more than the bound
	} {
		if _, _, err := m.View(c.off, c.n); !errors.Is(err, c.want) {
			t.Errorf("View(%d, %d): %v, want %v", c.off, c.n, err, c.want)
		}
	}
	if _, _, err := m.View(0, 256<<10); err != nil {
		t.Errorf("a view of exactly the bound: %v", err)
	}
}

func TestReleaseIdempotent(t *testing.T) {
	f, data := testFile(t, 300<<10)
	m := openT(t, f, small)
	_, rel1, err := m.View(10, 100)
	if err != nil {
		t.Fatal(err)
	}
	b2, rel2, err := m.View(200, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Move the frontier on, so that window 0 is unmapped as soon as it
	// has no views.
	checkView(t, m, data, 3*m.window, 10)
	rel1()
	rel1() // must not drop the second view's reference
	rel1()
	if s := m.Stats(); s.Mapped < 2*(m.window+m.overlap) {
		t.Fatalf("%d bytes mapped: a second release of one view took another's reference", s.Mapped)
	}
	if !bytes.Equal(b2, data[200:300]) {
		t.Fatal("the second view changed")
	}
	rel2()
	rel2()
	if s := m.Stats(); s.Mapped != m.window+m.overlap {
		t.Fatalf("%d bytes mapped after every view was released, want the idle furthest window's %d", s.Mapped, m.window+m.overlap)
	}
}

func TestClose(t *testing.T) {
	f, data := testFile(t, 300<<10)
	m, err := OpenOptions(f, small)
	if err != nil {
		t.Fatal(err)
	}
	b, rel, err := m.View(5000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	checkView(t, m, data, 2*m.window+7, 100) // an idle window after this
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The outstanding view stays readable until released.
	if !bytes.Equal(b, data[5000:6000]) {
		t.Fatal("a view outstanding at Close changed")
	}
	if s := m.Stats(); s.Mapped != m.window+m.overlap {
		t.Fatalf("after Close with one view outstanding: %d bytes mapped, want its window's %d", s.Mapped, m.window+m.overlap)
	}
	rel()
	if s := m.Stats(); s.Mapped != 0 {
		t.Fatalf("%d bytes mapped after Close and the last release", s.Mapped)
	}
	if _, _, err := m.View(0, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close: %v", err)
	}
	if _, err := m.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
	// The caller's file is untouched.
	if _, err := f.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatalf("the caller's file after Close: %v", err)
	}
}

// Close wakes a View waiting for room.
func TestCloseWakesWaiters(t *testing.T) {
	f, _ := testFile(t, 1<<20)
	m := openT(t, f, small)
	var rels []func()
	for k := int64(0); k < 3; k++ {
		_, rel, err := m.View(k*m.window, 100)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	got := make(chan error, 1)
	go func() {
		_, _, err := m.View(3*m.window, 100)
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	m.Close()
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting View after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("View still waiting after Close")
	}
	for _, rel := range rels {
		rel()
	}
	if s := m.Stats(); s.Mapped != 0 {
		t.Fatalf("%d bytes mapped", s.Mapped)
	}
}

func TestReadAt(t *testing.T) {
	f, data := testFile(t, 100<<10)
	m := openT(t, f, small)
	var _ io.ReaderAt = m
	p := make([]byte, 5000)
	if n, err := m.ReadAt(p, 1234); n != len(p) || err != nil || !bytes.Equal(p, data[1234:1234+5000]) {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if n, err := m.ReadAt(p, int64(len(data))-100); n != 100 || err != io.EOF || !bytes.Equal(p[:100], data[len(data)-100:]) {
		t.Fatalf("ReadAt at the end: %d, %v", n, err)
	}
	if n, err := m.ReadAt(p, int64(len(data))); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
	if _, err := m.ReadAt(p, -1); !errors.Is(err, ErrRange) {
		t.Fatalf("ReadAt(-1): %v", err)
	}
	// A file that grew is read at its size at Open.
	w, err := os.OpenFile(f.Name(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("more"))
	w.Close()
	if n, err := m.ReadAt(p, int64(len(data))-10); n != 10 || err != io.EOF {
		t.Fatalf("ReadAt over the end at Open of a grown file: %d, %v", n, err)
	}
	// One that shrank says so.
	if err := os.Truncate(f.Name(), 50<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadAt(p, 49<<10); !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAt of a shrunk file: %v", err)
	}
}

func TestNotRegular(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	files := []*os.File{r, w, dir, devnull}
	if l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s")); err == nil {
		defer l.Close()
		if sf, err := l.(*net.UnixListener).File(); err == nil {
			defer sf.Close()
			files = append(files, sf)
		}
	}
	for _, f := range files {
		if _, err := Open(f); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Open(%s): %v, want ErrNotRegular", f.Name(), err)
		}
	}
	// Opened for writing only: a regular file that cannot be mapped
	// for reading; Open works, View says why.
	wo, err := os.OpenFile(filepath.Join(t.TempDir(), "wo"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wo.Close()
	wo.Write(make([]byte, 100))
	m, err := Open(wo)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, _, err := m.View(0, 10); err == nil {
		t.Error("View of a write-only file worked")
	}
}

func TestOpenOptions(t *testing.T) {
	f, _ := testFile(t, 10)
	for _, o := range []Options{{Window: -1}, {Overlap: -1}, {MaxMapped: -1}, {Window: 1 << 20, MaxMapped: 1 << 20}} {
		if m, err := OpenOptions(f, o); err == nil {
			m.Close()
			t.Errorf("OpenOptions(%+v) worked", o)
		}
	}
	m := openT(t, f, Options{Window: 5000, Overlap: 1})
	if m.window != 8192 || m.overlap != 4096 {
		t.Errorf("window %d overlap %d: not rounded up to pages", m.window, m.overlap)
	}
}

func TestEmptyFile(t *testing.T) {
	f, _ := testFile(t, 0)
	m := openT(t, f, Options{})
	b, rel, err := m.View(0, 0)
	if err != nil || len(b) != 0 {
		t.Fatalf("View(0, 0) of an empty file: %v", err)
	}
	rel()
	if _, _, err := m.View(0, 1); !errors.Is(err, ErrRange) {
		t.Fatalf("View(0, 1) of an empty file: %v", err)
	}
}

// A file truncated under its mappings: the faults are caught by Guard, in
// plain Go code, in AES-GCM's assembly and in memmove alike.
func TestTruncated(t *testing.T) {
	f, data := testFile(t, 1<<20)
	m := openT(t, f, Options{})
	b, rel, err := m.View(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	if err := m.Guard(func() error {
		if !bytes.Equal(b, data) {
			return errors.New("contents differ")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.Name(), 4096); err != nil {
		t.Fatal(err)
	}
	var sum byte
	err = m.Guard(func() error {
		for _, c := range b {
			sum ^= c
		}
		return nil
	})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("reading past the new end: %v", err)
	}
	if !strings.Contains(err.Error(), "offset 4096") || !strings.Contains(err.Error(), "4096 bytes now") {
		t.Errorf("the error does not name the first missing byte and the size: %v", err)
	}
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	err = m.Guard(func() error {
		aead.Seal(nil, make([]byte, 12), b[1000:], nil)
		return nil
	})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("sealing past the new end: %v", err)
	}
	err = m.Guard(func() error {
		copy(make([]byte, 8192), b[4000:])
		return nil
	})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("copying past the new end: %v", err)
	}
	// What is left is still readable.
	if err := m.Guard(func() error {
		if !bytes.Equal(b[:4096], data[:4096]) {
			return errors.New("the first page differs")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A view taken after the truncation, past the new end: View does not
	// touch the pages, Guard reports the fault.
	b2, rel2, err := m.View(600<<10, 1000)
	if err == nil {
		defer rel2()
		err = m.Guard(func() error { sum ^= b2[999]; return nil })
	}
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("a new view past the new end: %v", err)
	}
}

// Guard passes on fn's error, re-raises panics that are not faults in its
// mappings, and restores the goroutine's panic-on-fault setting.
func TestGuard(t *testing.T) {
	f, _ := testFile(t, 4096)
	m := openT(t, f, Options{})
	errX := errors.New("x")
	if err := m.Guard(func() error { return errX }); err != errX {
		t.Fatalf("Guard returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the re-raised panic", r)
			}
		}()
		m.Guard(func() error { panic("boom") })
	}()
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("a nil dereference inside Guard was swallowed")
			}
		}()
		m.Guard(func() error {
			var p *[4]int
			return fmt.Errorf("%d", p[1])
		})
	}()
	old := debug.SetPanicOnFault(false)
	m.Guard(func() error { return nil })
	if debug.SetPanicOnFault(old) {
		t.Fatal("Guard left panic-on-fault set")
	}
}

// BenchmarkView is the cost of View and release of 256 KiB batches in
// order, the bytes not touched.
func BenchmarkView(b *testing.B) {
	f, _ := testFile(b, 64<<20)
	m := openT(b, f, Options{})
	const batch = 256 << 10
	b.SetBytes(batch)
	off := int64(0)
	for b.Loop() {
		if off+batch > m.Size() {
			off = 0
		}
		_, rel, err := m.View(off, batch)
		if err != nil {
			b.Fatal(err)
		}
		rel()
		off += batch
	}
}
