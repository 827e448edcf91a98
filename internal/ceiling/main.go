// Command ceiling measures the zero-copy ceiling of bulk encryption on this
// machine: a file mapped whole (one read-only shared mapping, mmap), sealed
// with AES-256-GCM in 64 KiB frames by GOMAXPROCS workers, each writing its
// frames into a buffer of its own that is thrown away (as output to
// /dev/null would be), and the same for opening (decrypting and
// authenticating) a sealed copy of the file laid out as frames. Nothing is
// copied out of the page cache: hsmenv encrypt and decrypt of the same file
// are measured against it by scripts/bench.sh.
//
//	go run ./internal/ceiling [-runs 5] [-sealed PATH] [-windowed] FILE
//
// Each run maps the file, seals (or opens) every frame and unmaps it; the
// clock covers all of it, page faults included. The sealed copy is written
// to PATH (default FILE.ceiling-sealed, removed at exit), synced to disk
// and read once before its runs, so that both files are page-cached and no
// write-back competes with the clock. The file itself should be
// page-cached already (read it once).
//
// Output: one line per run, "seal MB/s ..." or "open MB/s ...", then the
// medians as "seal-median MB/s" and "open-median MB/s"; MB/s are 10^6 bytes
// of plaintext per second. With -windowed the workers take their batches
// as views of internal/mmapfile (bounded windows) instead of slices of one
// whole mapping: the cost of the windows against the ceiling.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hsmenv/hsmenv/internal/mmapfile"
)

const (
	frameLen = 64 << 10
	// batchFrames frames per worker grab: 256 KiB of plaintext, as
	// envelope's pipeline jobs.
	batchFrames = 4
	ivLen       = 12
	tagLen      = 16
	// sealedFrame is one frame of the sealed copy: seq | IV | ciphertext |
	// tag, as a regular frame of the message format.
	sealedFrame = 4 + ivLen + frameLen + tagLen
)

func main() {
	runs := flag.Int("runs", 5, "timed runs of each of seal and open")
	sealedPath := flag.String("sealed", "", "where to write the sealed copy (default FILE.ceiling-sealed, removed at exit)")
	windowed := flag.Bool("windowed", false, "read through internal/mmapfile views instead of one whole mapping")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: ceiling [-runs N] [-sealed PATH] [-windowed] FILE\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *sealedPath, *runs, *windowed); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run(path, sealedPath string, runs int, windowed bool) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if sealedPath == "" {
		sealedPath = path + ".ceiling-sealed"
		defer os.Remove(sealedPath)
	}
	size, err := fileSize(path)
	if err != nil {
		return err
	}
	if size == 0 || size%frameLen != 0 {
		return fmt.Errorf("%s: %d bytes, not a positive multiple of %d (the frame size)", path, size, frameLen)
	}
	frames := size / frameLen
	if err := writeSealed(path, sealedPath, key, frames); err != nil {
		return err
	}
	workers := runtime.GOMAXPROCS(0)
	fmt.Printf("# %s: %d bytes, %d frames of %d bytes, %d workers, %s\n", path, size, frames, frameLen, workers,
		map[bool]string{false: "one whole mapping", true: "internal/mmapfile views"}[windowed])
	var seal, open []float64
	for i := 0; i < runs; i++ {
		// Alternate, so both see the same conditions.
		for _, op := range []string{"seal", "open"} {
			file, per := path, int64(frameLen)
			if op == "open" {
				file, per = sealedPath, sealedFrame
			}
			t0 := time.Now()
			if err := pass(file, op, key, frames, per, workers, windowed); err != nil {
				return err
			}
			secs := time.Since(t0).Seconds()
			mbps := float64(size) / secs / 1e6
			fmt.Printf("%s %.1f MB/s (run %d, %.3f s)\n", op, mbps, i+1, secs)
			if op == "seal" {
				seal = append(seal, mbps)
			} else {
				open = append(open, mbps)
			}
		}
	}
	fmt.Printf("seal-median %.1f MB/s\nopen-median %.1f MB/s\n", median(seal), median(open))
	return nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// aad is the frame's additional data, the size of the message format's
// (message id | content string | seq | length).
func aad(dst []byte, seq uint64) []byte {
	dst = append(dst[:0], make([]byte, 32)...)
	dst = append(dst, "AWSKMSEncryptionClient Frame"...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(seq))
	return binary.BigEndian.AppendUint64(dst, frameLen)
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// writeSealed writes the sealed copy of path, frame after frame, syncs it
// and reads it once.
func writeSealed(path, sealedPath string, key []byte, frames int64) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(sealedPath)
	if err != nil {
		return err
	}
	aead := newGCM(key)
	pt := make([]byte, frameLen)
	buf := make([]byte, 0, sealedFrame)
	var a []byte
	var iv [ivLen]byte
	for seq := int64(1); seq <= frames; seq++ {
		if _, err := io.ReadFull(in, pt); err != nil {
			out.Close()
			return fmt.Errorf("reading %s: %w", path, err)
		}
		binary.BigEndian.PutUint32(iv[ivLen-4:], uint32(seq))
		buf = binary.BigEndian.AppendUint32(buf[:0], uint32(seq))
		buf = append(buf, iv[:]...)
		a = aad(a, uint64(seq))
		buf = aead.Seal(buf, iv[:], pt, a)
		if _, err := out.Write(buf); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	f, err := os.Open(sealedPath)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// source hands workers the bytes of a batch of frames.
type source interface {
	view(off int64, n int) ([]byte, func(), error)
	guard(fn func() error) error
	close() error
}

// whole is one mapping of the whole file.
type whole struct{ data []byte }

func (w whole) view(off int64, n int) ([]byte, func(), error) {
	return w.data[off : off+int64(n)], func() {}, nil
}
func (w whole) guard(fn func() error) error { return fn() }
func (w whole) close() error                { return unix.Munmap(w.data) }

type windows struct{ f *mmapfile.File }

func (w windows) view(off int64, n int) ([]byte, func(), error) { return w.f.View(off, n) }
func (w windows) guard(fn func() error) error                   { return w.f.Guard(fn) }
func (w windows) close() error                                  { return w.f.Close() }

func openSource(path string, windowed bool) (source, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if windowed {
		m, err := mmapfile.Open(f)
		if err != nil {
			return nil, 0, err
		}
		return windows{m}, m.Size(), nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, 0, fmt.Errorf("mapping %s: %w", path, err)
	}
	return whole{data}, fi.Size(), nil
}

// pass maps file and seals (op "seal": plaintext frames of frameLen bytes)
// or opens (op "open": sealed frames of per bytes) all its frames on
// workers goroutines, batchFrames frames per grab.
func pass(file, op string, key []byte, frames, per int64, workers int, windowed bool) error {
	src, size, err := openSource(file, windowed)
	if err != nil {
		return err
	}
	if size != frames*per {
		src.close()
		return fmt.Errorf("%s: %d bytes, %d expected", file, size, frames*per)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			aead := newGCM(key)
			out := make([]byte, 0, batchFrames*(frameLen+tagLen))
			var a []byte
			var iv [ivLen]byte
			for {
				first := next.Add(batchFrames) - batchFrames
				if first >= frames {
					return
				}
				n := min(int64(batchFrames), frames-first)
				b, release, err := src.view(first*per, int(n*per))
				if err != nil {
					errs[w] = err
					return
				}
				err = src.guard(func() error {
					out = out[:0]
					for i := int64(0); i < n; i++ {
						seq := uint64(first + i + 1)
						a = aad(a, seq)
						binary.BigEndian.PutUint32(iv[ivLen-4:], uint32(seq))
						fr := b[i*per : (i+1)*per]
						if op == "seal" {
							out = aead.Seal(out, iv[:], fr, a)
							continue
						}
						var err error
						if out, err = aead.Open(out, fr[4:4+ivLen], fr[4+ivLen:], a); err != nil {
							return fmt.Errorf("frame %d: %w", seq, err)
						}
					}
					return nil
				})
				release()
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, src.close())...)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
