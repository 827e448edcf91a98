package tpm_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/tpm"
)

// TestNoHandleLeak: 1000 sequential unwraps of every kind, and failing
// ones, leave the TPM's transient objects and sessions as they were.
func TestNoHandleLeak(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	keks := []envelope.KEK{
		open(t, "tpm:seal?device="+d.Path()),
		open(t, "tpm:seal;pcrs=16;pin=yes?device="+d.Path()+"&pin-value=1234"),
		open(t, keygen(t, dir, "ecc", tpm.KeyECCP256, "", d.Path(), "")),
		open(t, keygen(t, dir, "rsa", tpm.KeyRSA2048, "", d.Path(), "")),
	}
	type wrapped struct {
		kek envelope.KEK
		edk envelope.EncryptedDataKey
	}
	var ws []wrapped
	for _, k := range keks {
		edk, err := k.Wrap(ctx, make([]byte, 32), testContext)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, wrapped{k, edk})
	}
	before := handles(t, d)
	if before.Transient != 1 || before.Sessions != 0 {
		t.Fatalf("at start: %+v", before)
	}
	n := 1000
	if testing.Short() {
		n = 100
	}
	for i := 0; i < n; i++ {
		w := ws[i%len(ws)]
		dek, err := w.kek.Unwrap(ctx, w.edk, testContext)
		if err != nil {
			t.Fatalf("unwrap %d (%s): %v", i, w.kek, err)
		}
		clear(dek)
	}
	if after := handles(t, d); after != before {
		t.Fatalf("after %d unwraps: handles %+v, before %+v", n, after, before)
	}
	// Failures: PCR policy failed, wrong PIN (noDA is off, so only one).
	if err := d.ExtendPCR(ctx, 16, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := ws[1].kek.Unwrap(ctx, ws[1].edk, testContext); err == nil {
			t.Fatal("unwrap after PCR change worked")
		}
	}
	d.ResetPCR(ctx, 16)
	wrong := open(t, "tpm:seal?device="+d.Path()+"&pin-value=4321")
	if _, err := wrong.Unwrap(ctx, ws[1].edk, testContext); err == nil {
		t.Fatal("wrong PIN worked")
	}
	if after := handles(t, d); after != before {
		t.Fatalf("after failures: handles %+v, before %+v", after, before)
	}
}

// TestConcurrentCallers: 8 goroutines wrapping and unwrapping with KEKs of
// every kind on one TPM are serialized safely (run with -race).
func TestConcurrentCallers(t *testing.T) {
	_, d := startTPM(t)
	dir := t.TempDir()
	keks := []envelope.KEK{
		open(t, "tpm:seal;pcrs=0?device="+d.Path()),
		open(t, keygen(t, dir, "ecc", tpm.KeyECCP256, ";pin=yes", d.Path(), "&pin-value=p")),
		open(t, keygen(t, dir, "rsa", tpm.KeyRSA2048, "", d.Path(), "")),
	}
	before := handles(t, d)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				k := keks[(g+i)%len(keks)]
				if err := unwrapOnce(k); err != nil {
					errs <- fmt.Errorf("goroutine %d, %s: %w", g, k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if after := handles(t, d); after != before {
		t.Fatalf("handles %+v, before %+v", after, before)
	}
}
