package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// cacheKEK wraps a raw AES KEK, counts device calls, can slow them down or
// hold them at a gate, and keeps every plaintext key it hands out.
type cacheKEK struct {
	envelope.KEK
	wraps, unwraps atomic.Int64
	delay          time.Duration
	gate           chan struct{} // if set, Wrap waits for it to close
	honorCtx       bool          // with gate: also return when ctx ends
	entered        chan struct{} // if set, signalled when Wrap starts

	mu      sync.Mutex
	handed  [][]byte // the keys Unwrap returned
	wrapped [][]byte // the plaintext keys Wrap was given (not copies)
}

// wrappedKeys returns the data keys Wrap was given.
func (k *cacheKEK) wrappedKeys() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.wrapped
}

func newCacheKEK(t testing.TB) *cacheKEK {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	k, err := rawaes.New("cache-test", "kek", key)
	if err != nil {
		t.Fatal(err)
	}
	return &cacheKEK{KEK: k}
}

func (k *cacheKEK) Wrap(ctx context.Context, dek []byte, ec envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	k.wraps.Add(1)
	k.mu.Lock()
	k.wrapped = append(k.wrapped, dek)
	k.mu.Unlock()
	if k.entered != nil {
		k.entered <- struct{}{}
	}
	if k.gate != nil {
		if k.honorCtx {
			select {
			case <-k.gate:
			case <-ctx.Done():
				return envelope.EncryptedDataKey{}, ctx.Err()
			}
		} else {
			<-k.gate
		}
	}
	time.Sleep(k.delay)
	return k.KEK.Wrap(ctx, dek, ec)
}

func (k *cacheKEK) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, ec envelope.EncryptionContext) ([]byte, error) {
	k.unwraps.Add(1)
	time.Sleep(k.delay)
	key, err := k.KEK.Unwrap(ctx, edk, ec)
	if err == nil {
		k.mu.Lock()
		k.handed = append(k.handed, key)
		k.mu.Unlock()
	}
	return key, err
}

// cacheClock is a clock moved by hand.
type cacheClock struct {
	mu sync.Mutex
	t  time.Time
}

func newCacheClock() *cacheClock { return &cacheClock{t: time.Unix(1_700_000_000, 0)} }

func (c *cacheClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *cacheClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func cacheMulti(t testing.TB, keks ...envelope.KEK) *envelope.Keyring {
	t.Helper()
	kr := envelope.NewKeyring(keks...)
	return kr
}

// newCaching returns a caching keyring over the KEKs of under.
func newCaching(t testing.TB, under *envelope.Keyring, opts envelope.CacheOptions) *envelope.Keyring {
	t.Helper()
	if opts.MaxAge == 0 {
		opts.MaxAge = time.Hour
	}
	kr, err := envelope.NewCachingKeyring(opts, under.KEKs()...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func cacheZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// cacheEDK names the data key of a message by its (first) EDK.
func cacheEDK(t testing.TB, msg []byte) string {
	t.Helper()
	h, err := envelope.ParseHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return string(h.EDKs[0].Ciphertext)
}

// cacheDrained checks that, once everything is released and the cache
// cleared, the cache holds no plaintext key any more.
func cacheDrained(t *testing.T, kr *envelope.Keyring) {
	t.Helper()
	kr.Cache().Clear()
	deadline := time.Now().Add(2 * time.Second)
	for kr.Stats().LiveKeys != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d plaintext keys still live after Clear with nothing in use", kr.Stats().LiveKeys)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheOptionsValidation(t *testing.T) {
	under := cacheMulti(t, newCacheKEK(t))
	shared, err := envelope.NewCache(4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		under *envelope.Keyring
		opts  envelope.CacheOptions
	}{
		{"no MaxAge", under, envelope.CacheOptions{}},
		{"negative MaxAge", under, envelope.CacheOptions{MaxAge: -time.Second}},
		{"MaxMessages above 2^32", under, envelope.CacheOptions{MaxAge: time.Minute, MaxMessages: 1<<32 + 1}},
		{"negative MaxBytes", under, envelope.CacheOptions{MaxAge: time.Minute, MaxBytes: -1}},
		{"negative Capacity", under, envelope.CacheOptions{MaxAge: time.Minute, Capacity: -1}},
		{"Capacity with a shared cache", under, envelope.CacheOptions{MaxAge: time.Minute, Cache: shared, Capacity: 3}},
	} {
		if _, err := envelope.NewCachingKeyring(c.opts, c.under.KEKs()...); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := envelope.NewCachingKeyring(envelope.CacheOptions{MaxAge: time.Minute, MaxMessages: 1 << 32}, under.KEKs()...); err != nil {
		t.Errorf("MaxMessages 2^32 refused: %v", err)
	}
	if _, err := envelope.NewCache(-1); err == nil {
		t.Error("NewCache(-1) accepted")
	}
}

// TestCacheIDVectors checks the cache entry identifiers against the vectors
// the ESDK implementations test theirs with (aws-encryption-sdk-python
// test/unit/caches/test_caches.py, also in the C and Java ESDKs' tests), for
// the formulas of caching-cmm.md, Appendix A.
func TestCacheIDVectors(t *testing.T) {
	kr := newCaching(t, cacheMulti(t, newCacheKEK(t)), envelope.CacheOptions{Partition: "c15b9079-6d0e-42b6-8784-5e804b025692"})
	full := envelope.EncryptionContext{"this": "is", "a": "non-empty", "encryption": "context"}
	const aes256ECDSAP384 = envelope.SuiteID(0x0378) // AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384
	for _, v := range []struct {
		suite envelope.SuiteID
		ec    envelope.EncryptionContext
		want  string
	}{
		{0, nil, "rkrFAso1YyPbOJbmwVMjrPw+wwLJT7xusn8tA8zMe9e3+OqbtfDueB7bvoKLU3fsmdUvZ6eMt7mBp1ThMMB25Q=="},
		{aes256ECDSAP384, nil, "3icBIkLK4V3fVwbm3zSxUdUQV6ZvZYUOLl8buN36g6gDMqAkghcGryxX7QiVABkW1JhB6GRp5z+bzbiuciBcKQ=="},
		{0, full, "IHiUHYOUVUEFTc3BcZPJDlsWct2Qy1A7JdfQl9sQoV/ILIbRpoz9q7RtGd/MlibaGl5ihE66cN8ygM8A5rtYbg=="},
		{aes256ECDSAP384, full, "mRNK7qhTb/kJiiyGPgAevp0gwFRcET4KeeNYwZHhoEDvSUzQiDgl8Of+YRDaVzKxAqpNBgcAuFXde9JlaRRsmw=="},
	} {
		id, err := kr.EncryptionCacheID(v.suite, v.ec)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(id); got != v.want {
			t.Errorf("encrypt id, suite %v, context %v: got %s, want %s", v.suite, v.ec, got, v.want)
		}
	}
	edk1 := envelope.EncryptedDataKey{ProviderID: "this is a provider ID", ProviderInfo: []byte("this is some key info"),
		Ciphertext: []byte("super secret key, now with encryption!")}
	edk2 := envelope.EncryptedDataKey{ProviderID: "another provider ID!", ProviderInfo: []byte("this is some different key info"),
		Ciphertext: []byte("better super secret key, now with encryption!")}
	for _, v := range []struct {
		suite envelope.SuiteID
		edks  []envelope.EncryptedDataKey
		ec    envelope.EncryptionContext
		want  string
	}{
		{0x0114, []envelope.EncryptedDataKey{edk1}, nil, "n0zVzk9QIVxhz6ET+aJIKKOJNxtpGtSe1yAbu7WU5l272Iw/jmhlER4psDHJs9Mr8KYiIvLGSXzggNDCc23+9w=="},
		{aes256ECDSAP384, []envelope.EncryptedDataKey{edk1, edk2}, full, "+rtwUe38CGnczGmYu12iqGWHIyDyZ44EvYQ4S6ACmsgS8VaEpiw0RTGpDk6Z/7YYN/jVHOAcNKDyCNP8EmstFg=="},
		{aes256ECDSAP384, []envelope.EncryptedDataKey{edk2, edk1}, full, "+rtwUe38CGnczGmYu12iqGWHIyDyZ44EvYQ4S6ACmsgS8VaEpiw0RTGpDk6Z/7YYN/jVHOAcNKDyCNP8EmstFg=="},
	} {
		id, err := kr.DecryptionCacheID(v.suite, v.edks, v.ec)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(id); got != v.want {
			t.Errorf("decrypt id, suite %v, %d EDKs: got %s, want %s", v.suite, len(v.edks), got, v.want)
		}
	}
}

func TestCacheMessageLimit(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{MaxMessages: 3})
	opts := envelope.EncryptOptions{Context: envelope.EncryptionContext{"tenant": "a"}}
	var keys []string
	for i := 0; i < 7; i++ {
		pt := randBytes(1024)
		msg, err := envelope.Encrypt(ctx, pt, kr, opts)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, cacheEDK(t, msg))
		got, _, err := envelope.Decrypt(ctx, msg, under, envelope.DecryptOptions{})
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("message %d does not decrypt: %v", i, err)
		}
	}
	if n := kek.wraps.Load(); n != 3 {
		t.Errorf("7 messages, at most 3 per key: %d wraps, want 3", n)
	}
	for i := range keys {
		if same := keys[i] == keys[i/3*3]; !same {
			t.Errorf("message %d does not share the key of message %d", i, i/3*3)
		}
		if i%3 == 0 && i > 0 && keys[i] == keys[i-1] {
			t.Errorf("message %d reuses a key that already served 3 messages", i)
		}
	}
	st := kr.Stats()
	if st.EncryptHits != 4 || st.EncryptMisses != 3 || st.DeviceCalls != 3 || st.Exhausted != 2 {
		t.Errorf("stats %+v: want 4 hits, 3 misses, 3 device calls, 2 exhausted", st)
	}
	cacheDrained(t, kr)
}

func TestCacheByteLimit(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	kr := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{MaxBytes: 100})
	ec := envelope.EncryptionContext{"k": "v"}
	get := func(size int64) string {
		t.Helper()
		dk, err := kr.NewDataKey(ctx, envelope.SuiteCommit, ec, size)
		if err != nil {
			t.Fatal(err)
		}
		defer dk.Release()
		return string(dk.EDKs[0].Ciphertext)
	}
	a := get(40)
	if get(40) != a {
		t.Error("80 of 100 bytes: the key was not reused")
	}
	b := get(30) // 110 > 100: a fresh key
	if b == a {
		t.Error("a message that would take the key past its byte limit reused it")
	}
	wraps := kek.wraps.Load()
	if big := get(101); big == a || big == b {
		t.Error("a message larger than the byte limit used a cached key")
	}
	if kek.wraps.Load() != wraps+1 || kr.Stats().Bypassed != 1 {
		t.Errorf("a message larger than the byte limit must bypass the cache: stats %+v", kr.Stats())
	}
	if get(70) != b { // 30 + 70 = 100: exactly the limit, still allowed
		t.Error("a message that reaches the limit exactly did not reuse the key")
	}
	if c := get(1); c == b {
		t.Error("a key that encrypted its full byte limit was reused")
	}
	if n := kek.wraps.Load(); n != 4 {
		t.Errorf("%d wraps, want 4", n)
	}
	// Through Encrypt, the size comes from the plaintext.
	kr2 := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{MaxBytes: 2048})
	var msgs []string
	for i := 0; i < 3; i++ {
		msg, err := envelope.Encrypt(ctx, randBytes(1024), kr2, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, cacheEDK(t, msg))
	}
	if msgs[0] != msgs[1] || msgs[2] == msgs[1] {
		t.Error("Encrypt: 2 KiB limit, three 1 KiB messages: want the first two to share a key and the third not")
	}
	cacheDrained(t, kr)
	cacheDrained(t, kr2)
}

// TestCacheUnknownSizeBypasses: as the ESDK's caching CMM, a request without
// a plaintext size neither uses nor fills the cache.
func TestCacheUnknownSizeBypasses(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{})
	for i := 0; i < 3; i++ {
		var buf bytes.Buffer
		e, err := envelope.NewEncrypter(ctx, &buf, kr, envelope.EncryptOptions{}) // size unknown
		if err != nil {
			t.Fatal(err)
		}
		e.Write([]byte("streamed"))
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _, err := envelope.Decrypt(ctx, buf.Bytes(), under, envelope.DecryptOptions{}); err != nil || string(got) != "streamed" {
			t.Fatal(err)
		}
	}
	st := kr.Stats()
	if kek.wraps.Load() != 3 || st.Bypassed != 3 || st.Entries != 0 || st.EncryptHits+st.EncryptMisses != 0 {
		t.Errorf("unknown sizes: %d wraps, stats %+v; want 3 wraps, all bypassed, nothing cached", kek.wraps.Load(), st)
	}
	// A known size still caches afterwards.
	for i := 0; i < 2; i++ {
		if _, err := envelope.Encrypt(ctx, []byte("known"), kr, envelope.EncryptOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if kek.wraps.Load() != 4 {
		t.Errorf("%d wraps, want 4", kek.wraps.Load())
	}
}

// TestCacheMaxMessagesOne: a key that may serve one message is never
// reused, so the cache is bypassed.
func TestCacheMaxMessagesOne(t *testing.T) {
	kek := newCacheKEK(t)
	kr := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{MaxMessages: 1})
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		msg, err := envelope.Encrypt(context.Background(), []byte("x"), kr, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seen[cacheEDK(t, msg)] = true
	}
	if len(seen) != 3 || kek.wraps.Load() != 3 {
		t.Errorf("MaxMessages 1: %d distinct keys, %d wraps; want 3 and 3", len(seen), kek.wraps.Load())
	}
}

func TestCacheMaxAge(t *testing.T) {
	ctx := context.Background()
	clock := newCacheClock()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{MaxAge: time.Minute, Clock: clock.Now})
	enc := func() []byte {
		t.Helper()
		msg, err := envelope.Encrypt(ctx, []byte("hello"), kr, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	m1 := enc()
	clock.Advance(59 * time.Second)
	if m2 := enc(); cacheEDK(t, m2) != cacheEDK(t, m1) {
		t.Error("a 59 s old key (MaxAge 1 min) was not reused")
	}
	clock.Advance(time.Second)
	m3 := enc()
	if cacheEDK(t, m3) == cacheEDK(t, m1) {
		t.Error("a key MaxAge old was reused")
	}
	if kek.wraps.Load() != 2 || kr.Stats().Expired != 1 {
		t.Errorf("%d wraps, stats %+v; want 2 wraps and 1 expired", kek.wraps.Load(), kr.Stats())
	}

	// Decrypt entries expire too.
	for i := 0; i < 3; i++ {
		if _, _, err := envelope.Decrypt(ctx, m3, kr, envelope.DecryptOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := kek.unwraps.Load(); n != 1 {
		t.Errorf("3 decrypts of one message: %d unwraps, want 1", n)
	}
	clock.Advance(time.Minute)
	if _, _, err := envelope.Decrypt(ctx, m3, kr, envelope.DecryptOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := kek.unwraps.Load(); n != 2 {
		t.Errorf("decrypt after MaxAge: %d unwraps, want 2", n)
	}
	cacheDrained(t, kr)
}

// TestCacheCoalescesEncrypt: 64 goroutines encrypting at once with a slow
// KEK make one data key between them.
func TestCacheCoalescesEncrypt(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	kek.delay = 30 * time.Millisecond
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{})
	const n = 64
	msgs := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			msgs[i], errs[i] = envelope.Encrypt(ctx, []byte(fmt.Sprint("message ", i)), kr, envelope.EncryptOptions{Concurrency: 1})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if cacheEDK(t, msgs[i]) != cacheEDK(t, msgs[0]) {
			t.Fatalf("message %d has a different data key", i)
		}
	}
	if w := kek.wraps.Load(); w != 1 {
		t.Errorf("%d goroutines at once: %d wraps, want 1", n, w)
	}
	st := kr.Stats()
	if st.DeviceCalls != 1 || st.EncryptHits+st.EncryptMisses != n || st.EncryptMisses != st.Coalesced+1 {
		t.Errorf("stats %+v: want 1 device call, %d requests, every miss but one coalesced", st, n)
	}
	t.Logf("stats: %+v", st)

	// Decrypt likewise: 64 goroutines, one unwrap.
	errs2 := make([]error, n)
	start2 := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start2
			got, _, err := envelope.Decrypt(ctx, msgs[i], kr, envelope.DecryptOptions{Concurrency: 1})
			if err == nil && string(got) != fmt.Sprint("message ", i) {
				err = errors.New("wrong plaintext")
			}
			errs2[i] = err
		}()
	}
	close(start2)
	wg.Wait()
	for i := range n {
		if errs2[i] != nil {
			t.Fatal(errs2[i])
		}
	}
	if u := kek.unwraps.Load(); u != 1 {
		t.Errorf("%d goroutines decrypting messages sharing EDKs: %d unwraps, want 1", n, u)
	}
	if st := kr.Stats(); st.DecryptHits+st.DecryptMisses != n || st.DeviceCalls != 2 {
		t.Errorf("stats %+v: want %d decrypt requests and 2 device calls in all", st, n)
	}
	cacheDrained(t, kr)
}

// TestCacheConcurrentLimitsExact: under contention every key serves exactly
// its limit, no more, and a new key is made only when the last one is spent.
func TestCacheConcurrentLimitsExact(t *testing.T) {
	for _, c := range []struct {
		name    string
		opts    envelope.CacheOptions
		perKey  int
		wantKey int64
	}{
		{"messages", envelope.CacheOptions{MaxMessages: 10}, 10, 7},
		{"bytes", envelope.CacheOptions{MaxBytes: 5 * 1024}, 5, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			kek := newCacheKEK(t)
			kek.delay = 2 * time.Millisecond
			kr := newCaching(t, cacheMulti(t, kek), c.opts)
			const n = 64
			var mu sync.Mutex
			uses := map[string]int{}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					dk, err := kr.NewDataKey(ctx, envelope.SuiteCommit, nil, 1024)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					uses[string(dk.EDKs[0].Ciphertext)]++
					mu.Unlock()
					dk.Release()
				}()
			}
			close(start)
			wg.Wait()
			for _, u := range uses {
				if u > c.perKey {
					t.Errorf("a key served %d messages, limit %d", u, c.perKey)
				}
			}
			if w := kek.wraps.Load(); w != c.wantKey || int64(len(uses)) != c.wantKey {
				t.Errorf("%d wraps, %d keys; want %d", w, len(uses), c.wantKey)
			}
			cacheDrained(t, kr)
		})
	}
}

func TestCachePartitions(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	shared, err := envelope.NewCache(16)
	if err != nil {
		t.Fatal(err)
	}
	a1 := newCaching(t, under, envelope.CacheOptions{Cache: shared, Partition: "a"})
	a2 := newCaching(t, under, envelope.CacheOptions{Cache: shared, Partition: "a"})
	b := newCaching(t, under, envelope.CacheOptions{Cache: shared, Partition: "b"})
	anon1 := newCaching(t, under, envelope.CacheOptions{Cache: shared})
	anon2 := newCaching(t, under, envelope.CacheOptions{Cache: shared})
	if anon1.Partition() == anon2.Partition() || anon1.Partition() == "" {
		t.Fatalf("default partitions %q and %q are not unique", anon1.Partition(), anon2.Partition())
	}
	key := func(kr *envelope.Keyring) string {
		dk, err := kr.NewDataKey(ctx, envelope.SuiteCommit, envelope.EncryptionContext{"same": "context"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer dk.Release()
		return string(dk.EDKs[0].Ciphertext)
	}
	ka := key(a1)
	if key(a2) != ka {
		t.Error("two keyrings of partition a do not share entries")
	}
	if kb := key(b); kb == ka {
		t.Error("partitions a and b share an entry")
	}
	k1, k2 := key(anon1), key(anon2)
	if k1 == k2 || k1 == ka {
		t.Error("keyrings with default partitions share entries")
	}
	if key(anon1) != k1 {
		t.Error("a keyring does not reuse its own entry")
	}
	if w := kek.wraps.Load(); w != 4 {
		t.Errorf("%d wraps, want 4 (a, b, two defaults)", w)
	}
	if shared.Len() != 4 {
		t.Errorf("shared cache holds %d entries, want 4", shared.Len())
	}
	// Sharing a partition, each keyring still enforces its own limits: the
	// entry of partition a has served 2 messages, too many for this one.
	strict := newCaching(t, under, envelope.CacheOptions{Cache: shared, Partition: "a", MaxMessages: 2})
	if key(strict) == ka {
		t.Error("a keyring with MaxMessages 2 reused a key that had served 2 messages")
	}
	cacheDrained(t, a1)
}

func TestCacheLRUEviction(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	kr := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{Capacity: 2})
	key := func(tenant string) string {
		dk, err := kr.NewDataKey(ctx, envelope.SuiteCommit, envelope.EncryptionContext{"tenant": tenant}, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer dk.Release()
		return string(dk.EDKs[0].Ciphertext)
	}
	k1, k2 := key("1"), key("2")
	if key("1") != k1 { // 1 is now the most recently used
		t.Fatal("no reuse")
	}
	key("3") // evicts 2, the least recently used
	if st := kr.Stats(); st.Entries != 2 || st.Evicted != 1 {
		t.Errorf("stats %+v: want 2 entries, 1 eviction", st)
	}
	wraps := kek.wraps.Load()
	if key("1") != k1 {
		t.Error("the most recently used entry was evicted")
	}
	if kek.wraps.Load() != wraps {
		t.Error("a hit called the KEK")
	}
	if key("2") == k2 {
		t.Error("the least recently used entry survived an eviction")
	}
	if kek.wraps.Load() != wraps+1 {
		t.Error("a miss after eviction did not call the KEK once")
	}
	if kr.Cache().Len() != 2 {
		t.Errorf("capacity 2, %d entries", kr.Cache().Len())
	}
	cacheDrained(t, kr)
}

// TestCacheZeroesOnlyAfterRelease follows one cached key through its life:
// the cache keeps its own copy, Release never zeroes it while the cache
// holds it, eviction never zeroes it while a message uses it, and it is
// zeroed once both are done.
func TestCacheZeroesOnlyAfterRelease(t *testing.T) {
	ctx := context.Background()
	clock := newCacheClock()
	spy := newCacheKEK(t)
	under := cacheMulti(t, spy)
	kr := newCaching(t, under, envelope.CacheOptions{Capacity: 1, MaxAge: time.Minute, Clock: clock.Now})
	ecA, ecB := envelope.EncryptionContext{"e": "a"}, envelope.EncryptionContext{"e": "b"}
	newKey := func(ec envelope.EncryptionContext) *envelope.DataKey {
		t.Helper()
		dk, err := kr.NewDataKey(ctx, envelope.SuiteCommit, ec, 10)
		if err != nil {
			t.Fatal(err)
		}
		return dk
	}

	t.Run("eviction", func(t *testing.T) {
		dk1 := newKey(ecA)
		cached := dk1.Key // the cache's copy
		orig := append([]byte(nil), cached...)
		if keys := spy.wrappedKeys(); len(keys) != 1 || !cacheZero(keys[0]) {
			t.Fatal("the fresh key was not zeroed once the cache copied it")
		}
		if &spy.wrappedKeys()[0][0] == &cached[0] {
			t.Fatal("the cache hands out the fresh key's buffer, not its own copy")
		}
		dk1.Release()
		dk1.Release() // idempotent
		if !bytes.Equal(cached, orig) {
			t.Fatal("Release zeroed a key the cache still holds")
		}
		dk2 := newKey(ecA)
		if &dk2.Key[0] != &cached[0] || !bytes.Equal(dk2.Key, orig) {
			t.Fatal("a hit did not hand out the cached key")
		}
		dkB := newKey(ecB) // capacity 1: evicts A while dk2 uses it
		if st := kr.Stats(); st.Evicted != 1 || st.LiveKeys != 2 {
			t.Fatalf("stats %+v: want A evicted and both keys live", st)
		}
		if !bytes.Equal(cached, orig) {
			t.Fatal("eviction zeroed a key in use")
		}
		dk2.Release()
		if !cacheZero(cached) {
			t.Fatal("an evicted key was not zeroed when its last user released it")
		}
		if st := kr.Stats(); st.LiveKeys != 1 {
			t.Fatalf("stats %+v: want 1 live key (B)", st)
		}
		cachedB := dkB.Key
		dkB.Release()
		kr.Cache().Clear()
		if !cacheZero(cachedB) || kr.Stats().LiveKeys != 0 {
			t.Fatal("Clear did not zero a key nobody uses")
		}
	})

	t.Run("expiry", func(t *testing.T) {
		dk1 := newKey(ecA)
		cached := dk1.Key
		clock.Advance(time.Minute)
		dk2 := newKey(ecA) // A expired: removed, a new key made
		if &dk2.Key[0] == &cached[0] {
			t.Fatal("an expired key was handed out")
		}
		if cacheZero(cached) {
			t.Fatal("expiry zeroed a key in use")
		}
		dk1.Release()
		if !cacheZero(cached) {
			t.Fatal("an expired key was not zeroed when its last user released it")
		}
		dk2.Release()
		kr.Cache().Clear()
	})

	t.Run("limit", func(t *testing.T) {
		kr := newCaching(t, under, envelope.CacheOptions{MaxMessages: 2})
		dk1, _ := kr.NewDataKey(ctx, envelope.SuiteCommit, ecA, 1)
		dk2, _ := kr.NewDataKey(ctx, envelope.SuiteCommit, ecA, 1) // spent: leaves the cache
		cached := dk1.Key
		if kr.Stats().Entries != 0 || &dk2.Key[0] != &cached[0] {
			t.Fatal("a key spent by its second message should be shared by both and out of the cache")
		}
		dk1.Release()
		if cacheZero(cached) {
			t.Fatal("zeroed while the second message uses it")
		}
		dk2.Release()
		if !cacheZero(cached) || kr.Stats().LiveKeys != 0 {
			t.Fatal("a spent key was not zeroed after its last message")
		}
	})

	t.Run("decrypt", func(t *testing.T) {
		kek := newCacheKEK(t)
		under := cacheMulti(t, kek)
		msg, err := envelope.Encrypt(ctx, []byte("x"), under, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := envelope.ParseHeader(bytes.NewReader(msg))
		kr := newCaching(t, under, envelope.CacheOptions{})
		dk1, err := kr.OpenDataKey(ctx, h.Suite, h.EDKs, h.Context)
		if err != nil {
			t.Fatal(err)
		}
		if !cacheZero(kek.handed[0]) {
			t.Fatal("the KEK's unwrapped key was not zeroed once the cache copied it")
		}
		cached := dk1.Key
		dk2, _ := kr.OpenDataKey(ctx, h.Suite, h.EDKs, h.Context)
		if &dk2.Key[0] != &cached[0] || kek.unwraps.Load() != 1 {
			t.Fatal("the second open did not reuse the cached key")
		}
		dk1.Release()
		kr.Cache().Clear()
		if cacheZero(cached) {
			t.Fatal("Clear zeroed a key in use")
		}
		dk2.Release()
		if !cacheZero(cached) || kr.Stats().LiveKeys != 0 {
			t.Fatal("a cleared key was not zeroed after its last user")
		}
	})
}

// TestCacheSignedSuite: entries of signed suites carry the signing key, so
// every message of one cached key is signed with the same key, which the
// context of each header names; all verify.
func TestCacheSignedSuite(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{})
	opts := envelope.EncryptOptions{Suite: envelope.SuiteCommitECDSA, Context: envelope.EncryptionContext{"purpose": "signed"}}
	var pubs []string
	for i := 0; i < 3; i++ {
		pt := randBytes(3000)
		msg, err := envelope.Encrypt(ctx, pt, kr, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, dec := range []*envelope.Keyring{under, kr} {
			got, h, err := envelope.Decrypt(ctx, msg, dec, envelope.DecryptOptions{RequiredContext: opts.Context})
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("message %d: %v", i, err)
			}
			if h.Suite != envelope.SuiteCommitECDSA {
				t.Fatalf("suite %v", h.Suite)
			}
			pubs = append(pubs, h.Context["aws-crypto-public-key"])
		}
	}
	for _, p := range pubs {
		if p == "" || p != pubs[0] {
			t.Fatal("messages of one cached key carry different verification keys")
		}
	}
	if kek.wraps.Load() != 1 {
		t.Errorf("%d wraps, want 1", kek.wraps.Load())
	}
	dk1, _ := kr.NewDataKey(ctx, envelope.SuiteCommitECDSA, opts.Context, 10)
	dk2, _ := kr.NewDataKey(ctx, envelope.SuiteCommitECDSA, opts.Context, 10)
	if dk1.SigningKey == nil || dk1.SigningKey != dk2.SigningKey {
		t.Error("the cached signing key is not handed out with the data key")
	}
	dk1.Release()
	dk2.Release()
	// A signed entry is not used for the unsigned suite, nor the reverse.
	dk3, _ := kr.NewDataKey(ctx, envelope.SuiteCommit, opts.Context, 10)
	if dk3.SigningKey != nil || dk3.Context["aws-crypto-public-key"] != "" {
		t.Error("an unsigned request got signed materials")
	}
	dk3.Release()
	cacheDrained(t, kr)
}

// TestCacheRoundTrip runs messages through Encrypt and Decrypt with a raw
// AES KEK and the cache on both sides.
func TestCacheRoundTrip(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{})
	var msgs [][]byte
	var pts [][]byte
	for _, suite := range []envelope.SuiteID{envelope.SuiteCommit, envelope.SuiteCommitECDSA} {
		for _, size := range []int{1, 1024, 70_000, 300_000} {
			pt := randBytes(size)
			msg, err := envelope.Encrypt(ctx, pt, kr, envelope.EncryptOptions{Suite: suite, FrameSize: 4096,
				Context: envelope.EncryptionContext{"a": "b"}})
			if err != nil {
				t.Fatal(err)
			}
			msgs, pts = append(msgs, msg), append(pts, pt)
		}
	}
	if kek.wraps.Load() != 2 {
		t.Errorf("%d wraps for two suites, want 2", kek.wraps.Load())
	}
	for round := 0; round < 2; round++ {
		for i, msg := range msgs {
			got, _, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{})
			if err != nil || !bytes.Equal(got, pts[i]) {
				t.Fatalf("message %d: %v", i, err)
			}
		}
	}
	if kek.unwraps.Load() != 2 {
		t.Errorf("%d unwraps for messages under two data keys, want 2", kek.unwraps.Load())
	}

	// Changing what a message's Header shows does not reach the cache.
	var buf bytes.Buffer
	e, err := envelope.NewEncrypter(ctx, &buf, kr, envelope.EncryptOptions{Context: envelope.EncryptionContext{"a": "b"}, PlaintextSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.Header().Context["a"] = "changed"
	e.Header().EDKs[0] = envelope.EncryptedDataKey{ProviderID: "bogus"}
	e.Write([]byte("abc"))
	e.Close()
	msg, err := envelope.Encrypt(ctx, []byte("after"), kr, envelope.EncryptOptions{Context: envelope.EncryptionContext{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, h, err := envelope.Decrypt(ctx, msg, under, envelope.DecryptOptions{}); err != nil || string(got) != "after" || h.Context["a"] != "b" {
		t.Fatalf("a header change reached the cache: %v", err)
	}

	// A message under a fresh key is a decrypt miss; a tampered one fails.
	other, _ := envelope.Encrypt(ctx, []byte("other"), under, envelope.EncryptOptions{})
	if _, _, err := envelope.Decrypt(ctx, other, kr, envelope.DecryptOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(msgs[1])
	bad[len(bad)-20] ^= 1
	if _, _, err := envelope.Decrypt(ctx, bad, kr, envelope.DecryptOptions{}); !errors.Is(err, envelope.ErrFrameAuth) {
		t.Fatalf("tampered message through the cache: %v", err)
	}
	cacheDrained(t, kr)
}

// TestCacheSeparatesContextsAndSuites: an entry serves only the exact
// partition, suite and context (and, on decrypt, EDK set) it was made for.
func TestCacheSeparatesContextsAndSuites(t *testing.T) {
	ctx := context.Background()
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{})
	type req struct {
		suite envelope.SuiteID
		ec    envelope.EncryptionContext
	}
	reqs := []req{
		{envelope.SuiteCommit, nil},
		{envelope.SuiteCommit, envelope.EncryptionContext{"a": "1"}},
		{envelope.SuiteCommit, envelope.EncryptionContext{"a": "2"}},
		{envelope.SuiteCommit, envelope.EncryptionContext{"a": "1", "b": "2"}},
		{envelope.SuiteCommit, envelope.EncryptionContext{"a1": ""}}, // same bytes as {"a": "1"} concatenated
		{envelope.SuiteCommitECDSA, nil},
		{envelope.SuiteCommitECDSA, envelope.EncryptionContext{"a": "1"}},
	}
	keys := map[string]int{}
	for round := 0; round < 2; round++ {
		for i, r := range reqs {
			dk, err := kr.NewDataKey(ctx, r.suite, r.ec, 10)
			if err != nil {
				t.Fatal(err)
			}
			want := r.ec
			if !dk.Context.Contains(want) || len(dk.Context) != len(want)+map[bool]int{false: 0, true: 1}[r.suite.Signed()] {
				t.Errorf("request %d got the context %v", i, dk.Context)
			}
			k := string(dk.Key)
			if j, ok := keys[k]; ok && j != i {
				t.Errorf("requests %d and %d got the same data key", j, i)
			}
			keys[k] = i
			// The EDKs open under the context of this request only.
			got, err := under.OpenDataKey(ctx, r.suite, dk.EDKs, dk.Context)
			if err != nil || !bytes.Equal(got.Key, dk.Key) {
				t.Errorf("request %d: the EDKs do not hold the key handed out: %v", i, err)
			}
			got.Release()
			dk.Release()
		}
	}
	if int(kek.wraps.Load()) != len(reqs) {
		t.Errorf("%d wraps, want %d", kek.wraps.Load(), len(reqs))
	}

	// Decrypt: same EDKs under another context or suite is another entry.
	msg, _ := envelope.Encrypt(ctx, []byte("x"), under, envelope.EncryptOptions{Context: envelope.EncryptionContext{"a": "1"}})
	h, _ := envelope.ParseHeader(bytes.NewReader(msg))
	dk, err := kr.OpenDataKey(ctx, h.Suite, h.EDKs, h.Context)
	if err != nil {
		t.Fatal(err)
	}
	dk.Release()
	calls := kr.Stats().DeviceCalls
	if _, err := kr.OpenDataKey(ctx, h.Suite, h.EDKs, envelope.EncryptionContext{"a": "2"}); err == nil {
		t.Error("the cache opened EDKs under a context they were not made for")
	}
	dk, err = kr.OpenDataKey(ctx, envelope.SuiteCommitECDSA, h.EDKs, h.Context) // raw AES binds only the context
	if err != nil {
		t.Fatal(err)
	}
	dk.Release()
	if d := kr.Stats().DeviceCalls - calls; d != 2 {
		t.Errorf("other context and other suite: %d device calls, want 2 (no hit)", d)
	}
	other := h.EDKs[0]
	other.Ciphertext = bytes.Clone(other.Ciphertext)
	other.Ciphertext[0] ^= 1
	if _, err := kr.OpenDataKey(ctx, h.Suite, []envelope.EncryptedDataKey{other}, h.Context); err == nil {
		t.Error("the cache opened an altered EDK")
	}
	cacheDrained(t, kr)
}

// TestCacheCancellation: a request that gives up does not break the others
// waiting on the same device call, nor leak a reference.
func TestCacheCancellation(t *testing.T) {
	t.Run("leader cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			kek := newCacheKEK(t)
			kek.gate, kek.honorCtx, kek.entered = make(chan struct{}), true, make(chan struct{}, 4)
			kr := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{})
			ctxA, cancelA := context.WithCancel(context.Background())
			errA := make(chan error, 1)
			go func() {
				_, err := kr.NewDataKey(ctxA, envelope.SuiteCommit, nil, 10)
				errA <- err
			}()
			<-kek.entered
			errB := make(chan error, 1)
			go func() {
				dk, err := kr.NewDataKey(context.Background(), envelope.SuiteCommit, nil, 10)
				if err == nil {
					dk.Release()
				}
				errB <- err
			}()
			synctest.Wait() // B has joined A's call: every goroutine of the test is blocked
			cancelA()
			if err := <-errA; !errors.Is(err, context.Canceled) {
				t.Fatalf("A: %v", err)
			}
			select { // B tries again on its own
			case <-kek.entered:
			case err := <-errB:
				t.Fatalf("B gave up with A: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("B never called the KEK again")
			}
			close(kek.gate)
			if err := <-errB; err != nil {
				t.Fatalf("B failed because A was cancelled: %v", err)
			}
			cacheDrained(t, kr)
		})
	})
	t.Run("waiter cancelled", func(t *testing.T) {
		kek := newCacheKEK(t)
		kek.gate, kek.entered = make(chan struct{}), make(chan struct{}, 4)
		kr := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{})
		errA := make(chan error, 1)
		go func() {
			dk, err := kr.NewDataKey(context.Background(), envelope.SuiteCommit, nil, 10)
			if err == nil {
				dk.Release()
			}
			errA <- err
		}()
		<-kek.entered
		ctxB, cancelB := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancelB()
		errB := make(chan error, 1)
		go func() {
			_, err := kr.NewDataKey(ctxB, envelope.SuiteCommit, nil, 10)
			errB <- err
		}()
		select {
		case err := <-errB:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("B: %v", err)
			}
		case <-time.After(5 * time.Second):
			close(kek.gate)
			t.Fatal("B kept waiting on A's call after its context ended")
		}
		close(kek.gate)
		if err := <-errA; err != nil {
			t.Fatal(err)
		}
		cacheDrained(t, kr)
	})
	t.Run("leader gives up, load succeeds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			kek := newCacheKEK(t)
			kek.gate, kek.entered = make(chan struct{}), make(chan struct{}, 4) // ignores ctx
			kr := newCaching(t, cacheMulti(t, kek), envelope.CacheOptions{})
			ctxA, cancelA := context.WithCancel(context.Background())
			errA := make(chan error, 1)
			go func() {
				_, err := kr.NewDataKey(ctxA, envelope.SuiteCommit, nil, 10)
				errA <- err
			}()
			<-kek.entered
			cancelA()
			if err := <-errA; !errors.Is(err, context.Canceled) {
				t.Fatalf("A: %v", err)
			}
			close(kek.gate) // the load now completes and caches the key
			synctest.Wait() // the load's goroutines have finished
			if n := kr.Stats().Entries; n != 1 {
				t.Fatalf("%d entries: the load did not cache its key", n)
			}
			dk, err := kr.NewDataKey(context.Background(), envelope.SuiteCommit, nil, 10)
			if err != nil {
				t.Fatal(err)
			}
			dk.Release()
			if kek.wraps.Load() != 1 {
				t.Errorf("%d wraps, want 1", kek.wraps.Load())
			}
			kr.Cache().Clear()
			if n := kr.Stats().LiveKeys; n != 0 { // the abandoned reservation was dropped
				t.Fatalf("%d plaintext keys still live after Clear with nothing in use", n)
			}
		})
	})
}

// TestCacheLegacyIdentityKDFBypass: decrypt requests of identity-KDF suites
// are never cached (caching-cmm.md, "Decrypt Materials").
func TestCacheLegacyIdentityKDFBypass(t *testing.T) {
	kek := newCacheKEK(t)
	under := cacheMulti(t, kek)
	kr := newCaching(t, under, envelope.CacheOptions{})
	msg, _ := envelope.Encrypt(context.Background(), []byte("x"), under, envelope.EncryptOptions{})
	h, _ := envelope.ParseHeader(bytes.NewReader(msg))
	for i := 0; i < 2; i++ {
		// 0x0078 is AES-256-GCM with the identity KDF; the raw AES KEK opens
		// the EDK whatever the suite.
		dk, err := kr.OpenDataKey(context.Background(), 0x0078, h.EDKs, h.Context)
		if err != nil {
			t.Fatal(err)
		}
		dk.Release()
	}
	if st := kr.Stats(); st.Bypassed != 2 || st.Entries != 0 || kek.unwraps.Load() != 2 {
		t.Errorf("stats %+v, %d unwraps: want both bypassed", st, kek.unwraps.Load())
	}
}

// BenchmarkCachedEncrypt1KiB measures 1 KiB messages through Encrypt with a
// caching keyring over a raw AES KEK (every message after the first is a
// hit), on one goroutine and on all. "keyring" is the cache hit alone,
// without the encrypter.
func BenchmarkCachedEncrypt1KiB(b *testing.B) {
	ctx := context.Background()
	pt := make([]byte, 1024)
	kr := newCaching(b, cacheMulti(b, newCacheKEK(b)), envelope.CacheOptions{MaxAge: time.Hour, MaxMessages: math.MaxUint32})
	ec := envelope.EncryptionContext{"tenant": "bench"}
	opts := envelope.EncryptOptions{Context: ec}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, err := envelope.Encrypt(ctx, pt, kr, opts); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := envelope.Encrypt(ctx, pt, kr, opts); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
	b.Run("parallel-concurrency1", func(b *testing.B) {
		o := opts
		o.Concurrency = 1
		b.SetBytes(int64(len(pt)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := envelope.Encrypt(ctx, pt, kr, o); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
	b.Run("keyring", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				dk, err := kr.NewDataKey(ctx, envelope.SuiteCommit, ec, 1024)
				if err != nil {
					b.Error(err)
					return
				}
				dk.Release()
			}
		})
		report(b)
	})
	if st := kr.Stats(); st.DeviceCalls != 1 {
		b.Logf("stats %+v", st)
	}
}

// TestCacheDecryptMemoTellsEDKsApart: messages whose EDKs differ only in
// their ciphertext (raw RSA: the provider info is the key name) get their
// own data keys from a caching keyring, in any order.
func TestCacheDecryptMemoTellsEDKsApart(t *testing.T) {
	ctx := context.Background()
	under := rsaKeyring(t)
	kr := newCaching(t, under, envelope.CacheOptions{})
	var msgs, pts [][]byte
	for i := 0; i < 3; i++ {
		pt := randBytes(100)
		msg, err := envelope.Encrypt(ctx, pt, under, envelope.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		msgs, pts = append(msgs, msg), append(pts, pt)
	}
	for _, i := range []int{0, 1, 0, 2, 2, 1} {
		got, _, err := envelope.Decrypt(ctx, msgs[i], kr, envelope.DecryptOptions{})
		if err != nil || !bytes.Equal(got, pts[i]) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if st := kr.Stats(); st.DecryptMisses != 3 || st.DecryptHits != 3 {
		t.Fatalf("stats %+v: want 3 misses (one per message) and 3 hits", st)
	}
}
