package kmsplugin_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	kmsapi "k8s.io/kms/apis/v2"

	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/kmsplugin"
	"github.com/hsmenv/hsmenv/resolver"
)

// benchKeys are the primary keys the benchmarks serve with: an AES-256 key
// in SoftHSM2 and an ECC P-256 key file in swtpm.
func benchKeys(b *testing.B) map[string]string {
	_, uris := keys(b, "aes-256")
	sw := tpmtest.Start(b)
	tpmURI := "tpm:key-file=" + filepath.Join(b.TempDir(), "ecc.key") + "?device=" + sw.Device()
	if _, err := resolver.GenerateKey(context.Background(), tpmURI, "ecc-p256", resolver.Options{}); err != nil {
		b.Fatal(err)
	}
	return map[string]string{"softhsm-aes": uris[0], "swtpm-ecc": tpmURI}
}

// run makes n calls of call from conc goroutines and reports ops/s and the
// p50 and p99 latency.
func run(b *testing.B, conc int, call func(i int) error) {
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < b.N; i += conc {
				t0 := time.Now()
				err := call(i)
				lat[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkGRPC measures Encrypt and Decrypt through the real gRPC client
// over the unix socket, with 1 and 8 concurrent callers.
func BenchmarkGRPC(b *testing.B) {
	for name, uri := range benchKeys(b) {
		p, _ := newPlugin(b, kmsplugin.Config{Keys: []string{uri}})
		client, _ := serve(b, p)
		ctx := context.Background()
		seed := make([]byte, 32)
		rand.Read(seed)
		enc, err := client.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed})
		if err != nil {
			b.Fatal(err)
		}
		for _, conc := range []int{1, 8} {
			b.Run(name+"/Encrypt/conc="+itoa(conc), func(b *testing.B) {
				run(b, conc, func(int) error {
					_, err := client.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed})
					return err
				})
			})
			b.Run(name+"/Decrypt/conc="+itoa(conc), func(b *testing.B) {
				run(b, conc, func(int) error {
					_, err := client.Decrypt(ctx, &kmsapi.DecryptRequest{Ciphertext: enc.Ciphertext, KeyId: enc.KeyId})
					return err
				})
			})
		}
	}
}

// BenchmarkColdStart decrypts 1,000 distinct seeds, as an apiserver with an
// empty cache does when it starts, with 1 and 8 concurrent callers; the
// metric is the time for all 1,000.
func BenchmarkColdStart(b *testing.B) {
	_, uris := keys(b, "aes-256")
	p, _ := newPlugin(b, kmsplugin.Config{Keys: uris})
	client, _ := serve(b, p)
	ctx := context.Background()
	const n = 1000
	cts := make([][]byte, n)
	for i := range cts {
		seed := make([]byte, 32)
		rand.Read(seed)
		enc, err := client.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed})
		if err != nil {
			b.Fatal(err)
		}
		cts[i] = enc.Ciphertext
	}
	for _, conc := range []int{1, 8} {
		b.Run("softhsm-aes/conc="+itoa(conc), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, conc)
				for g := range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := g; i < n; i += conc {
							if _, err := client.Decrypt(ctx, &kmsapi.DecryptRequest{Ciphertext: cts[i]}); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/1000-seeds")
		})
	}
}

func itoa(n int) string {
	if n == 1 {
		return "1"
	}
	return "8"
}
