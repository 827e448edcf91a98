package envelope_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
)

// BenchmarkRangeRead4KiB reads 4 KiB at random (unaligned) offsets of a
// 1 GiB message held in a page-cached file, through one RangeReader opened
// beforehand, as a server answering range requests does. It reports the
// frames read and authenticated per request (frames/op, and the most any
// one request read, max-frames/op) beside ns/op. The "open+read" variants
// open the message for every request, as `hsmenv decrypt --range` does:
// header, data key unwrap (a software KEK here) and the final frame, which
// authenticates the plaintext size.
func BenchmarkRangeRead4KiB(b *testing.B) {
	kr := benchKeyring(b)
	const n = 1 << 30
	for _, frame := range []int{envelope.DefaultFrameSize, 4 << 10} {
		_, sealed := benchFiles(b, kr, n, frame)
		f, err := os.Open(sealed)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		offsets := make([]int64, 1<<16)
		rng := rand.New(rand.NewPCG(4096, uint64(frame)))
		for i := range offsets {
			offsets[i] = rng.Int64N(n - 4096 + 1)
		}
		p := make([]byte, 4096)
		b.Run(fmt.Sprintf("frame=%dKiB/read", frame>>10), func(b *testing.B) {
			rr, err := envelope.OpenRange(context.Background(), f, st.Size(), kr, envelope.DecryptOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer rr.Close()
			base, most := rr.FramesRead(), int64(0)
			i := 0
			for b.Loop() {
				before := rr.FramesRead()
				if _, err := rr.ReadAt(p, offsets[i%len(offsets)]); err != nil {
					b.Fatal(err)
				}
				most = max(most, rr.FramesRead()-before)
				i++
			}
			b.ReportMetric(float64(rr.FramesRead()-base)/float64(i), "frames/op")
			b.ReportMetric(float64(most), "max-frames/op")
		})
		b.Run(fmt.Sprintf("frame=%dKiB/open+read", frame>>10), func(b *testing.B) {
			var total, most int64
			i := 0
			for b.Loop() {
				rr, err := envelope.OpenRange(context.Background(), f, st.Size(), kr, envelope.DecryptOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rr.ReadAt(p, offsets[i%len(offsets)]); err != nil {
					b.Fatal(err)
				}
				total += rr.FramesRead()
				most = max(most, rr.FramesRead())
				rr.Close()
				i++
			}
			b.ReportMetric(float64(total)/float64(i), "frames/op")
			b.ReportMetric(float64(most), "max-frames/op")
		})
		f.Close()
	}
}
