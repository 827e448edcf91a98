package envelope

// Data-key caching, following the AWS Encryption SDK's caching
// cryptographic materials manager (specification repository
// awslabs/aws-encryption-sdk-specification: framework/caching-cmm.md v0.4.0,
// framework/cryptographic-materials-cache.md and
// framework/local-cryptographic-materials-cache.md).
//
// Ownership of plaintext keys is the subtle part. Every cache entry owns a
// private copy of its data key and a reference count: one reference while
// the entry is in the cache, one per data key handed out and not yet
// released. The count only grows under Cache.mu while the entry is in the
// cache (so it is at least one there), and whoever drops it to zero — the
// last Release, or the eviction of an entry nobody uses — zeroes the key.
// Hence Release never zeroes a key the cache still holds, eviction never
// zeroes a key a message still uses, and no key outlives both.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultCacheCapacity is the number of entries a Cache holds when
// CacheOptions.Capacity is zero.
const DefaultCacheCapacity = 1024

// MaxCacheMessages is the largest, and the default, number of messages one
// cached data key may encrypt: 2^32, the ESDK's default message limit
// (caching-cmm.md, "Limit Messages").
const MaxCacheMessages = 1 << 32

// cachePruneTail is the local CMC's "entry pruning tail size": how many of
// the least recently used entries every get and put checks for expiry.
const cachePruneTail = 4

// CacheOptions configures the data-key cache of a keyring made by
// NewCachingKeyring. MaxAge is required; the zero value of every other field
// picks the ESDK's default.
type CacheOptions struct {
	// MaxAge is how long a data key may be used after the keyring's KEKs
	// wrapped or unwrapped it (the ESDK's required "cache limit TTL"). It must be
	// greater than zero. It applies to encrypt and decrypt entries alike.
	MaxAge time.Duration
	// MaxMessages is how many messages one cached data key may encrypt, 1 to
	// MaxCacheMessages; zero means MaxCacheMessages. With 1 nothing is ever
	// reused, so encryption bypasses the cache.
	MaxMessages uint64
	// MaxBytes is how many plaintext bytes one cached data key may encrypt,
	// summed over its messages; zero means math.MaxInt64 (the ESDK's "no more
	// than 2^63-1"). A message larger than MaxBytes never uses the cache.
	MaxBytes int64
	// Partition keeps keyrings that share a Cache apart: they share entries
	// if and only if their partitions are equal. Empty means a random
	// partition unique to this keyring.
	Partition string
	// Cache is the store to use, which several keyrings may share. Nil means
	// a new private Cache of Capacity entries.
	Cache *Cache
	// Capacity is the number of entries of the private Cache made when Cache
	// is nil; zero means DefaultCacheCapacity. It must be zero when Cache is
	// set.
	Capacity int
	// Clock returns the current time; nil means time.Now. Tests set it to
	// move time by hand.
	Clock func() time.Time
}

// Cache is an in-memory, least-recently-used store of data keys (the ESDK's
// local cryptographic materials cache). It holds at most its capacity of
// entries; an entry leaves it when it is the least recently used one and
// room is needed, when its age or usage limit is reached, or on Clear. The
// plaintext key of an entry that left is zeroed as soon as no message uses
// it any more. A Cache is safe for concurrent use and may be shared by
// several caching keyrings (see CacheOptions.Partition).
type Cache struct {
	mu         sync.Mutex
	capacity   int
	entries    map[[sha512.Size]byte]*cacheEntry
	head, tail *cacheEntry // most and least recently used

	group singleflight.Group // one device call per entry id at a time

	live                        atomic.Int64
	evicted, expired, exhausted atomic.Uint64
}

// NewCache returns an empty Cache that holds up to capacity entries; zero
// means DefaultCacheCapacity.
func NewCache(capacity int) (*Cache, error) {
	if capacity < 0 {
		return nil, fmt.Errorf("cache capacity %d is negative", capacity)
	}
	if capacity == 0 {
		capacity = DefaultCacheCapacity
	}
	return &Cache{capacity: capacity, entries: make(map[[sha512.Size]byte]*cacheEntry)}, nil
}

// Len returns the number of entries in the cache.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Clear removes every entry. Keys no message uses are zeroed at once, the
// others when their last user releases them. Call it when the cache is no
// longer needed, so no plaintext key stays in memory until the next access.
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.tail != nil {
		c.removeLocked(c.tail)
	}
}

// cacheEntry is one data key of the cache. Fields other than refs are
// guarded by Cache.mu once the entry is shared.
type cacheEntry struct {
	id      [sha512.Size]byte
	decrypt bool
	cache   *Cache

	key  []byte  // the cache's own copy, zeroed when refs drops to zero
	made dataKey // encrypt: what the header needs (EDKs, contexts, signing key), without the key

	created, expires time.Time
	messages         uint64 // encrypt usage, including reserved messages
	bytes            int64

	inCache    bool
	prev, next *cacheEntry

	refs    atomic.Int64 // 1 while in the cache, plus 1 per data key handed out
	release func()       // e.unref, made once
}

// unref drops one reference and zeroes the key with the last one.
func (e *cacheEntry) unref() {
	switch n := e.refs.Add(-1); {
	case n == 0:
		clear(e.key)
		e.cache.live.Add(-1)
	case n < 0:
		panic("envelope: cached data key released more often than handed out")
	}
}

// handout returns a dataKey sharing e's key; its Release drops one
// reference, which the caller has already taken. The EDK list and the
// context are the caller's own copies, so nothing done to a message's
// Header reaches the cache.
func (e *cacheEntry) handout() *dataKey {
	if e.decrypt {
		return &dataKey{key: e.key, release: e.release}
	}
	d := e.made
	d.key, d.release = e.key, e.release
	d.edks, d.context = slices.Clone(d.edks), d.context.clone()
	if d.unstored == nil {
		d.stored = d.context
	} else {
		d.stored, d.unstored = d.stored.clone(), d.unstored.clone()
	}
	return &d
}

func (c *Cache) unlinkLocked(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFrontLocked(e *cacheEntry) {
	e.next = c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *Cache) touchLocked(e *cacheEntry) {
	if c.head != e {
		c.unlinkLocked(e)
		c.pushFrontLocked(e)
	}
}

// removeLocked takes e out of the cache and drops the cache's reference.
func (c *Cache) removeLocked(e *cacheEntry) {
	if !e.inCache {
		return
	}
	c.unlinkLocked(e)
	delete(c.entries, e.id)
	e.inCache = false
	e.unref()
}

// insertLocked adds e, which must hold no cache reference yet, replacing any
// entry of the same id, then evicts least recently used entries until the
// capacity holds.
func (c *Cache) insertLocked(e *cacheEntry, now time.Time) {
	if old := c.entries[e.id]; old != nil {
		c.removeLocked(old)
	}
	e.refs.Add(1)
	e.inCache = true
	c.entries[e.id] = e
	c.pushFrontLocked(e)
	c.pruneLocked(now)
	for len(c.entries) > c.capacity {
		c.evicted.Add(1)
		c.removeLocked(c.tail)
	}
}

// pruneLocked evicts the TTL-expired entries among the least recently used
// few (local-cryptographic-materials-cache.md, "Pruning").
func (c *Cache) pruneLocked(now time.Time) {
	e := c.tail
	for i := 0; i < cachePruneTail && e != nil; i++ {
		prev := e.prev
		if !now.Before(e.expires) {
			c.expired.Add(1)
			c.removeLocked(e)
		}
		e = prev
	}
}

// newEntry returns an entry owning a copy of key, with one reference (the
// caller's) and not in the cache.
func (c *Cache) newEntry(id *[sha512.Size]byte, decrypt bool, key []byte, now time.Time, maxAge time.Duration) *cacheEntry {
	e := &cacheEntry{id: *id, decrypt: decrypt, cache: c, key: slices.Clone(key), created: now, expires: now.Add(maxAge)}
	e.release = e.unref
	e.refs.Store(1)
	c.live.Add(1)
	return e
}

// CacheStats counts what a caching keyring did. The first group is the
// keyring's own; Entries, LiveKeys, Evicted, Expired and Exhausted describe
// its Cache, which other keyrings may share.
type CacheStats struct {
	// EncryptHits and DecryptHits count requests served from an entry found
	// in the cache at once.
	EncryptHits, DecryptHits uint64
	// EncryptMisses and DecryptMisses count requests that found no usable
	// entry and so made, or waited for, a call to the KEKs.
	EncryptMisses, DecryptMisses uint64
	// Coalesced counts misses served by another request's call to the KEKs
	// rather than by one of their own.
	Coalesced uint64
	// Bypassed counts requests the cache does not serve and passes straight
	// to the KEKs: unknown or too large plaintext size,
	// MaxMessages of 1, identity-KDF suites, unencodable EDKs.
	Bypassed uint64
	// DeviceCalls counts data keys made (wrapped under every KEK) or
	// unwrapped, failed attempts included: misses that were not coalesced,
	// plus bypassed requests.
	DeviceCalls uint64

	// Entries is the number of entries in the cache.
	Entries int
	// LiveKeys is the number of plaintext keys the cache has not zeroed yet:
	// those of its entries plus those of removed entries still in use.
	LiveKeys int
	// Evicted counts entries removed to keep within the capacity.
	Evicted uint64
	// Expired counts entries removed because MaxAge had passed.
	Expired uint64
	// Exhausted counts encrypt entries removed because their message or byte
	// limit was reached, or could not take the next message.
	Exhausted uint64
}

// NewCachingKeyring returns a keyring over keks (see NewKeyring) that
// reuses data keys, as the ESDK's caching materials manager does, so that
// many small messages cost one HSM or TPM round trip instead of one each.
// It fails on a MaxAge not above zero or a limit out of range.
//
// On encrypt, one data key (with its EDKs, the context stored with it and,
// for signed suites, the signing key) serves every message of the same
// partition, suite and encryption context until MaxMessages messages or
// MaxBytes plaintext bytes have used it, or MaxAge has passed since it was
// made; a message that would go over a limit gets a fresh key instead. A
// message whose size is unknown (EncryptOptions.PlaintextSize not set) or
// larger than MaxBytes always gets a fresh key and leaves the cache
// untouched. On decrypt, the data key recovered for a set of EDKs (with the
// suite and context) is reused until MaxAge has passed.
//
// Concurrent requests that miss the same entry wait for a single call to
// the KEKs. Usage accounting is exact: every message is counted (with the
// size the encrypter declared) before its key is handed out, so no key ever
// serves more than its limits.
//
// Keys handed out share the cache's copy; the cache zeroes the copy once it
// has left the cache and no message uses it.
func NewCachingKeyring(opts CacheOptions, keks ...KEK) (*Keyring, error) {
	c, err := newKeyCache(opts)
	if err != nil {
		return nil, err
	}
	kr := NewKeyring(keks...)
	kr.cache = c
	return kr, nil
}

// keyCache is the caching part of a keyring: its limits, its partition of
// a Cache, and its counters.
type keyCache struct {
	cache       *Cache
	partition   string
	partHash    [sha512.Size]byte
	maxAge      time.Duration
	maxMessages uint64
	maxBytes    int64
	now         func() time.Time

	encHits, decHits, encMisses, decMisses atomic.Uint64
	coalesced, bypassed, deviceCalls       atomic.Uint64

	memo    atomic.Pointer[idMemo]    // the last encrypt request's id
	decMemo atomic.Pointer[decIDMemo] // the last decrypt request's id
}

// idMemo remembers the cache id of one encrypt request, so a stream of
// messages under one context skips serializing and hashing it. ec is a
// private copy, compared by content; the id is a function of it.
type idMemo struct {
	suite    SuiteID
	ec       EncryptionContext
	required []string
	id       [sha512.Size]byte
}

// newKeyCache checks opts and makes the cache they describe.
func newKeyCache(opts CacheOptions) (*keyCache, error) {
	if opts.MaxAge <= 0 {
		return nil, fmt.Errorf("caching keyring: MaxAge must be greater than zero (got %v)", opts.MaxAge)
	}
	if opts.MaxMessages > MaxCacheMessages {
		return nil, fmt.Errorf("caching keyring: MaxMessages %d is above the limit of 2^32", opts.MaxMessages)
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("caching keyring: MaxBytes %d is negative", opts.MaxBytes)
	}
	k := &keyCache{cache: opts.Cache, partition: opts.Partition,
		maxAge: opts.MaxAge, maxMessages: opts.MaxMessages, maxBytes: opts.MaxBytes, now: opts.Clock}
	if k.maxMessages == 0 {
		k.maxMessages = MaxCacheMessages
	}
	if k.maxBytes == 0 {
		k.maxBytes = math.MaxInt64
	}
	if k.now == nil {
		k.now = time.Now
	}
	switch {
	case k.cache != nil && opts.Capacity != 0:
		return nil, errors.New("caching keyring: Capacity is for the private cache; set it on the shared Cache instead")
	case k.cache == nil:
		c, err := NewCache(opts.Capacity)
		if err != nil {
			return nil, err
		}
		k.cache = c
	}
	if k.partition == "" {
		k.partition = "hsmenv-" + rand.Text()
	}
	k.partHash = sha512.Sum512([]byte(k.partition))
	return k, nil
}

// Partition returns the partition name of a caching keyring, the one given
// or the random one chosen; "" for a keyring without a cache.
func (kr *Keyring) Partition() string {
	if kr.cache == nil {
		return ""
	}
	return kr.cache.partition
}

// Cache returns the store a caching keyring uses (to Clear it, or to share
// it); nil for a keyring without a cache.
func (kr *Keyring) Cache() *Cache {
	if kr.cache == nil {
		return nil
	}
	return kr.cache.cache
}

// Stats returns a caching keyring's counters and its cache's state; the
// zero CacheStats for a keyring without a cache.
func (kr *Keyring) Stats() CacheStats {
	k := kr.cache
	if k == nil {
		return CacheStats{}
	}
	c := k.cache
	return CacheStats{
		EncryptHits: k.encHits.Load(), DecryptHits: k.decHits.Load(),
		EncryptMisses: k.encMisses.Load(), DecryptMisses: k.decMisses.Load(),
		Coalesced: k.coalesced.Load(), Bypassed: k.bypassed.Load(), DeviceCalls: k.deviceCalls.Load(),
		Entries: c.Len(), LiveKeys: int(c.live.Load()),
		Evicted: c.evicted.Load(), Expired: c.expired.Load(), Exhausted: c.exhausted.Load(),
	}
}

// encryptID and decryptID compute the cache entry identifiers exactly as
// caching-cmm.md, Appendix A, defines them. An encrypt request's id is
//
//	SHA512(SHA512(UTF8(partition)) || 0x01 || suite id (u16) || SHA512(SerializeEncryptionContext(ec)))
//
// or, for suite 0 (a request naming no suite, which hsmenv never makes),
//
//	SHA512(SHA512(UTF8(partition)) || 0x00 || SHA512(SerializeEncryptionContext(ec))).
//
// A decrypt request's id is
//
//	SHA512(SHA512(UTF8(partition)) || suite id (u16) || sorted SHA512(EDK entry) for each EDK
//	       || 64 zero bytes || SHA512(SerializeEncryptionContext(ec)))
//
// where an EDK entry is serialized as in the message header (appendEDK).

// encryptKey returns the id of an encrypt request, from the memo when the
// request is the last one seen. A request with required context keys
// (pairs not stored) has an id of its own: the ESDK id, hashed again with
// the sorted keys, since its messages carry other headers.
func (k *keyCache) encryptKey(suite SuiteID, ec EncryptionContext, required []string) ([sha512.Size]byte, error) {
	if m := k.memo.Load(); m != nil && m.suite == suite && maps.Equal(m.ec, ec) && slices.Equal(m.required, required) {
		return m.id, nil
	}
	id, err := k.encryptID(suite, ec)
	if err != nil {
		return id, err
	}
	if len(required) > 0 {
		h := sha512.New()
		h.Write(id[:])
		for _, key := range slices.Sorted(slices.Values(required)) {
			h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(key))))
			h.Write([]byte(key))
		}
		h.Sum(id[:0])
	}
	k.memo.Store(&idMemo{suite: suite, ec: ec.clone(), required: slices.Clone(required), id: id})
	return id, nil
}

func (k *keyCache) encryptID(suite SuiteID, ec EncryptionContext) ([sha512.Size]byte, error) {
	ser, err := ec.Serialize()
	if err != nil {
		return [sha512.Size]byte{}, err
	}
	ech := sha512.Sum512(ser)
	var b [2*sha512.Size + 3]byte
	buf := append(b[:0], k.partHash[:]...)
	if suite == 0 {
		buf = append(buf, 0x00)
	} else {
		buf = append(buf, 0x01)
		buf = binary.BigEndian.AppendUint16(buf, uint16(suite))
	}
	buf = append(buf, ech[:]...)
	return sha512.Sum512(buf), nil
}

// decIDMemo remembers the id of one decrypt request, so that messages
// under one cached data key (the same EDKs and context) skip hashing their
// EDKs. edks and ec are private copies, compared by content.
type decIDMemo struct {
	suite SuiteID
	edks  []EncryptedDataKey
	ec    EncryptionContext
	id    [sha512.Size]byte
}

// decryptKey returns the id of a decrypt request, from the memo when the
// request is the last one seen.
func (k *keyCache) decryptKey(suite SuiteID, edks []EncryptedDataKey, ec EncryptionContext) ([sha512.Size]byte, error) {
	if m := k.decMemo.Load(); m != nil && m.suite == suite && maps.Equal(m.ec, ec) && slices.EqualFunc(m.edks, edks, sameEDK) {
		return m.id, nil
	}
	id, err := k.decryptID(suite, edks, ec)
	if err != nil {
		return id, err
	}
	own := make([]EncryptedDataKey, len(edks))
	for i, e := range edks {
		own[i] = EncryptedDataKey{ProviderID: e.ProviderID, ProviderInfo: bytes.Clone(e.ProviderInfo), Ciphertext: bytes.Clone(e.Ciphertext)}
	}
	k.decMemo.Store(&decIDMemo{suite: suite, edks: own, ec: ec.clone(), id: id})
	return id, nil
}

// sameEDK reports whether two EDKs are byte for byte the same.
func sameEDK(a, b EncryptedDataKey) bool {
	return a.ProviderID == b.ProviderID && bytes.Equal(a.ProviderInfo, b.ProviderInfo) && bytes.Equal(a.Ciphertext, b.Ciphertext)
}

func (k *keyCache) decryptID(suite SuiteID, edks []EncryptedDataKey, ec EncryptionContext) ([sha512.Size]byte, error) {
	var id [sha512.Size]byte
	ser, err := ec.Serialize()
	if err != nil {
		return id, err
	}
	hashes := make([][sha512.Size]byte, len(edks))
	var entry []byte
	for i, edk := range edks {
		if entry, err = appendEDK(entry[:0], i, edk); err != nil {
			return id, err
		}
		hashes[i] = sha512.Sum512(entry)
	}
	slices.SortFunc(hashes, func(a, b [sha512.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha512.New()
	h.Write(k.partHash[:])
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(suite)))
	for i := range hashes {
		h.Write(hashes[i][:])
	}
	h.Write(make([]byte, sha512.Size))
	ech := sha512.Sum512(ser)
	h.Write(ech[:])
	h.Sum(id[:0])
	return id, nil
}

// newDataKey returns a data key for a message of size bytes of suite s
// under ec: a cached one that can take the message, or else a new one from
// kr's KEKs, which is then cached. Following the ESDK (caching-cmm.md
// 0.4.0, "Get Encryption Materials", and change
// 2020-07-13_caching-cmm-max-plaintext-length), a message of unknown size
// (-1) bypasses the cache: it neither takes a cached key nor caches its
// own, since its bytes could not be counted. So does one larger than
// MaxBytes.
func (k *keyCache) newDataKey(ctx context.Context, kr *Keyring, s *suite, ec EncryptionContext, required []string, size int64) (*dataKey, error) {
	if size < 0 || size > k.maxBytes || s.kdf == nil || k.maxMessages == 1 {
		k.bypassed.Add(1)
		k.deviceCalls.Add(1)
		return kr.makeDataKey(ctx, s, ec, required)
	}
	id, err := k.encryptKey(s.id, ec, required)
	if err != nil {
		return nil, err
	}
	if e := k.reserve(&id, false, size); e != nil {
		k.encHits.Add(1)
		return e.handout(), nil
	}
	k.encMisses.Add(1)
	e, err := k.miss(ctx, &id, false, size, func(ctx context.Context) (loaded, error) {
		return k.loadEncrypt(ctx, kr, &id, s, ec, required, size)
	})
	if err != nil {
		return nil, err
	}
	return e.handout(), nil
}

// openDataKey returns the data key of edks: a cached one if the same
// partition, suite, EDKs and context were opened less than MaxAge ago, or
// else the one kr's KEKs recover, which is then cached. Messages of
// identity-KDF (legacy) suites bypass the cache, as the ESDK requires
// (caching-cmm.md, "Decrypt Materials").
func (k *keyCache) openDataKey(ctx context.Context, kr *Keyring, s *suite, edks []EncryptedDataKey, ec EncryptionContext) (*dataKey, error) {
	err := errors.ErrUnsupported
	var id [sha512.Size]byte
	if s.kdf != nil && len(edks) > 0 {
		id, err = k.decryptKey(s.id, edks, ec) // an unencodable request is not cached
	}
	if err != nil {
		k.bypassed.Add(1)
		k.deviceCalls.Add(1)
		return kr.unwrap(ctx, s, edks, ec)
	}
	if e := k.reserve(&id, true, 0); e != nil {
		k.decHits.Add(1)
		return e.handout(), nil
	}
	k.decMisses.Add(1)
	e, err := k.miss(ctx, &id, true, 0, func(ctx context.Context) (loaded, error) {
		return k.loadDecrypt(ctx, kr, &id, s, edks, ec)
	})
	if err != nil {
		return nil, err
	}
	return e.handout(), nil
}

// loaded is what a load returns: an entry holding a reservation for the
// request that ran the load; fresh if the load called the underlying keyring.
type loaded struct {
	e     *cacheEntry
	fresh bool
}

// miss returns the entry of id with one reference and one message reserved
// for the caller, after a lookup found none usable, filling the cache
// through load. Concurrent misses of the same id share one load; the load
// reserves for the request that runs it, and the others then reserve from
// the cache like hits, or load again if the fresh entry could not take them.
func (k *keyCache) miss(ctx context.Context, id *[sha512.Size]byte, decrypt bool, size int64,
	load func(context.Context) (loaded, error)) (*cacheEntry, error) {
	for {
		l, led, err := k.fill(ctx, id, load)
		switch {
		case err == nil && led:
			if !l.fresh {
				k.coalesced.Add(1) // a load that finished meanwhile filled it
			}
			return l.e, nil
		case err != nil && !led && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
			// The request whose call we waited for was cancelled, not us:
			// try again.
		case err != nil:
			return nil, err
		}
		if e := k.reserve(id, decrypt, size); e != nil {
			k.coalesced.Add(1)
			return e, nil
		}
	}
}

// fill runs load for id once among concurrent callers. led reports whether
// this caller's load ran, in which case the entry carries the caller's
// reservation. A caller whose ctx ends first returns at once; the
// reservation of its load, if it had one, is then dropped when the load
// finishes.
func (k *keyCache) fill(ctx context.Context, id *[sha512.Size]byte,
	load func(context.Context) (loaded, error)) (l loaded, led bool, err error) {
	ran := false
	ch := k.cache.group.DoChan(string(id[:]), func() (any, error) {
		ran = true
		return load(ctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return loaded{}, ran, r.Err
		}
		return r.Val.(loaded), ran, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.Err == nil && ran {
				r.Val.(loaded).e.unref()
			}
		}()
		return loaded{}, false, ctx.Err()
	}
}

// reserve looks id up and, if its entry can take the request, counts it
// (one message of size bytes on encrypt), takes a reference and returns it.
// An entry that cannot take it (too old, or over a limit with this message)
// is removed, so that the next load replaces it.
func (k *keyCache) reserve(id *[sha512.Size]byte, decrypt bool, size int64) *cacheEntry {
	now := k.now()
	c := k.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	e := c.entries[*id]
	if e == nil || e.decrypt != decrypt {
		return nil
	}
	if !now.Before(e.expires) || now.Sub(e.created) >= k.maxAge {
		c.expired.Add(1)
		c.removeLocked(e)
		return nil
	}
	if !decrypt {
		if e.messages >= k.maxMessages || size > k.maxBytes-e.bytes {
			c.exhausted.Add(1)
			c.removeLocked(e)
			return nil
		}
		e.messages++
		e.bytes += size
	}
	e.refs.Add(1)
	if !decrypt && (e.messages >= k.maxMessages || e.bytes >= k.maxBytes) {
		// Spent: leave the cache now, so the key is zeroed with its last
		// message rather than when the entry is next looked at.
		c.exhausted.Add(1)
		c.removeLocked(e)
	} else {
		c.touchLocked(e)
	}
	return e
}

// loadEncrypt makes a data key with kr's KEKs and caches it with the
// caller's message already counted. An entry cached by a load that finished
// just before this one started is used instead.
func (k *keyCache) loadEncrypt(ctx context.Context, kr *Keyring, id *[sha512.Size]byte, s *suite, ec EncryptionContext, required []string, size int64) (loaded, error) {
	if e := k.reserve(id, false, size); e != nil {
		return loaded{e: e}, nil
	}
	k.deviceCalls.Add(1)
	dk, err := kr.makeDataKey(ctx, s, ec, required)
	if err != nil {
		return loaded{}, err
	}
	defer dk.Release()
	now := k.now()
	c := k.cache
	e := c.newEntry(id, false, dk.key, now, k.maxAge)
	e.made = *dk
	e.made.key, e.made.release = nil, nil
	e.messages, e.bytes = 1, size
	if e.messages < k.maxMessages && e.bytes < k.maxBytes {
		c.mu.Lock()
		c.insertLocked(e, now)
		c.mu.Unlock()
	}
	return loaded{e: e, fresh: true}, nil
}

// loadDecrypt recovers the data key of edks with kr's KEKs and caches it
// with a reference for the caller. An entry cached by a load that finished
// just before this one started is used instead.
func (k *keyCache) loadDecrypt(ctx context.Context, kr *Keyring, id *[sha512.Size]byte, s *suite, edks []EncryptedDataKey, ec EncryptionContext) (loaded, error) {
	if e := k.reserve(id, true, 0); e != nil {
		return loaded{e: e}, nil
	}
	k.deviceCalls.Add(1)
	dk, err := kr.unwrap(ctx, s, edks, ec)
	if err != nil {
		return loaded{}, err
	}
	defer dk.Release()
	now := k.now()
	c := k.cache
	e := c.newEntry(id, true, dk.key, now, k.maxAge)
	c.mu.Lock()
	c.insertLocked(e, now)
	c.mu.Unlock()
	return loaded{e: e, fresh: true}, nil
}
