package hsm

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// Token is one token of a module, with one login and a bounded pool of
// sessions reused across operations (SoftHSM2 2.6.1 crashes when sessions
// are closed under concurrency, so they are not churned). Lost sessions, a
// forgotten login, a removed and re-inserted token and a module finalized
// behind its back are recovered by reopening and logging in again. It is
// safe for concurrent use.
type Token struct {
	mod     *Module
	sel     tokenSelector
	profile *Profile
	sem     chan struct{} // one slot per session that may be open

	mu        sync.Mutex
	found     bool
	everFound bool // found once: missing now, the module may need a rescan
	slot      uint
	info      pkcs11.TokenInfo
	modGen    uint64 // module generation the slot was found in
	sessGen   uint64 // bumped when every session must be dropped
	objGen    uint64 // bumped when cached object handles may be stale
	idle      []session
	loggedIn  bool
	rejected  *rejectedPINs // never sent again
	pinErr    error         // a locked PIN: nothing is sent any more
	mechs     map[uint]mechInfo
}

// session is a pooled session and the generation it belongs to.
type session struct {
	h   pkcs11.SessionHandle
	gen uint64
}

type tokenSelector struct {
	label, serial, manufacturer string
	slotID                      *uint
}

// String names the token selected for messages: `token "demo"`, `the
// token with serial 1234 in slot 3`, or `the token` when nothing selects.
func (s tokenSelector) String() string {
	var parts []string
	if s.serial != "" {
		parts = append(parts, fmt.Sprintf("serial %q", s.serial))
	}
	if s.manufacturer != "" {
		parts = append(parts, fmt.Sprintf("manufacturer %q", s.manufacturer))
	}
	if s.slotID != nil {
		parts = append(parts, fmt.Sprintf("in slot %d", *s.slotID))
	}
	name := "the token"
	if s.label != "" {
		name = fmt.Sprintf("token %q", s.label)
	}
	if len(parts) == 0 {
		return name
	}
	if s.label == "" && s.slotID == nil || len(parts) > 1 {
		name += " with"
	}
	return name + " " + strings.Join(parts, ", ")
}

var tokens = tokenRegistry{m: map[string]*Token{}, rejected: map[string]*rejectedPINs{}}

type tokenRegistry struct {
	sync.Mutex
	m map[string]*Token
	// rejected holds the PINs each token rejected, shared by every Token
	// of it (by module, manufacturer, serial number and label), whichever
	// URI selected it.
	rejected map[string]*rejectedPINs
}

func (r *tokenRegistry) forget(m *Module) {
	r.Lock()
	defer r.Unlock()
	for k, t := range r.m {
		if t.mod == m {
			delete(r.m, k)
		}
	}
}

// loadModule returns the module u names: its module-path, else o's
// default (WithModule), loaded if it is not.
func (u *URI) loadModule(o options) (*Module, error) {
	path := u.ModulePath
	if path == "" {
		path = o.module
	}
	if path == "" {
		return nil, ErrNoModule
	}
	return LoadModule(path, u.InitArgs)
}

// ForgetLogin finalizes the module of the pkcs11: URI uri (its
// module-path, else WithModule's), so that the next key opened on any of
// its tokens logs in again with its own PIN: a PKCS#11 login lasts as long
// as the module is initialized, for every key of the token. A URI that
// does not parse or names no module is left alone.
func ForgetLogin(uri string, opts ...Option) {
	u, err := ParseURI(uri)
	if err != nil {
		return
	}
	if m, err := u.loadModule(applyOptions(opts)); err == nil {
		m.Finalize()
	}
}

// openToken returns the token u names, loading its module (u's
// module-path, else o's default) if needed. Every URI naming the same token
// of the same module shares one Token (one login, one session pool); the
// PIN comes from the operation that logs in (Token.do). Nothing is sent to
// the token until it is used.
func openToken(u *URI, o options) (*Token, error) {
	mod, err := u.loadModule(o)
	if err != nil {
		return nil, err
	}
	sel := tokenSelector{label: u.Token, serial: u.Serial, manufacturer: u.Manufacturer, slotID: u.SlotID}
	// A forced profile or pool bound makes another Token for the same token
	// (PKCS#11 logins are per application, so they share the login).
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%d", mod.path, sel, u.Profile, u.MaxSession)
	tokens.Lock()
	defer tokens.Unlock()
	if t, ok := tokens.m[key]; ok {
		return t, nil
	}
	t := &Token{mod: mod, sel: sel}
	if err := mod.retryTorn(t.find); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s\x00%s\x00%s\x00%s", mod.path, t.info.ManufacturerID, t.info.SerialNumber, t.info.Label)
	if tokens.rejected[id] == nil {
		tokens.rejected[id] = &rejectedPINs{}
	}
	t.rejected = tokens.rejected[id]
	if u.Profile != "" {
		if t.profile, err = profileByName(u.Profile); err != nil {
			return nil, err
		}
	} else {
		t.profile = selectProfile(t.info, mod.path)
	}
	n := t.profile.MaxSessions
	if u.MaxSession > 0 {
		n = u.MaxSession
	}
	if max := t.info.MaxSessionCount; max > 0 && max != pkcs11.CK_EFFECTIVELY_INFINITE && max != pkcs11.CK_UNAVAILABLE_INFORMATION && uint(n) > max {
		n = int(max)
	}
	t.sem = make(chan struct{}, max(n, 1))
	tokens.m[key] = t
	return t, nil
}

// Label returns the token label.
func (t *Token) Label() string { return strings.TrimSpace(t.info.Label) }

// Manufacturer returns the token's manufacturer id.
func (t *Token) Manufacturer() string { return strings.TrimSpace(t.info.ManufacturerID) }

// Profile returns the vendor profile in use.
func (t *Token) Profile() *Profile { return t.profile }

// describe names the token for a PIN prompt: its label and model (or
// manufacturer). The caller holds t.mu or owns t.
func (t *Token) describe() string {
	what := fmt.Sprintf("token %q", strings.TrimSpace(t.info.Label))
	model := strings.TrimSpace(t.info.Model)
	if model == "" {
		model = strings.TrimSpace(t.info.ManufacturerID)
	}
	if model != "" {
		what += " (" + model + ")"
	}
	return what
}

// find locates the slot holding the token. The caller holds t.mu or owns t.
func (t *Token) find() error {
	ctx := t.mod.ctx
	gen := t.mod.generation()
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("%w: listing slots of %s: %v", ErrModule, t.mod.path, err)
	}
	var matches []uint
	var infos []pkcs11.TokenInfo
	var seen []string // labels of the initialized tokens
	for _, s := range slots {
		if t.sel.slotID != nil && s != *t.sel.slotID {
			continue
		}
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		label := strings.TrimSpace(ti.Label)
		initialized := ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0
		if initialized {
			seen = append(seen, fmt.Sprintf("%q", label))
		} else if t.sel.slotID == nil {
			continue
		}
		if (t.sel.label != "" && label != t.sel.label) ||
			(t.sel.serial != "" && strings.TrimSpace(ti.SerialNumber) != t.sel.serial) ||
			(t.sel.manufacturer != "" && strings.TrimSpace(ti.ManufacturerID) != t.sel.manufacturer) {
			continue
		}
		matches = append(matches, s)
		infos = append(infos, ti)
	}
	switch len(matches) {
	case 0:
		if len(seen) == 0 {
			return fmt.Errorf("%w: %s has no initialized token; %s", ErrTokenNotFound, t.mod.path, t.mod.initTokenHint())
		}
		return fmt.Errorf("%w: no %s in module %s (it has %s)", ErrTokenNotFound, t.sel, t.mod.path, listBounded(seen, 4))
	case 1:
	default:
		labels := make([]string, len(infos))
		for i, ti := range infos {
			labels[i] = fmt.Sprintf("%q (serial %s)", strings.TrimSpace(ti.Label), strings.TrimSpace(ti.SerialNumber))
		}
		return fmt.Errorf("%w: %d tokens match (%s); name one by token=, serial= or slot-id=", ErrAmbiguous, len(matches), listBounded(labels, 4))
	}
	t.slot, t.info, t.found, t.modGen, t.everFound = matches[0], infos[0], true, gen, true
	return nil
}

// acquire returns a logged-in session, opening one if none is idle and the
// pool bound allows; otherwise it waits (or fails when ctx is done). A
// login takes its PIN from pins, passing ctx on; nil pins means a session
// for public objects, which does not log in (it is logged in only if the
// token already is: a login holds for every session of the application).
func (t *Token) acquire(ctx context.Context, pins *pinSource) (session, error) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return session{}, ctx.Err()
	}
	s, err := t.take(ctx, pins)
	if err != nil {
		<-t.sem
	}
	return s, err
}

func (t *Token) take(ctx context.Context, pins *pinSource) (session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pinErr != nil {
		return session{}, t.pinErr
	}
	if !t.found {
		err := t.find()
		if err != nil && t.everFound {
			// Some modules see a token that came back only after
			// C_Initialize (SoftHSM2); rescan is rate-limited.
			if rerr := t.mod.rescan(t.mod.generation()); rerr == nil {
				err = t.find()
			}
		}
		if err != nil {
			return session{}, fmt.Errorf("%w: %v", ErrTokenGone, err)
		}
	}
	var s session
	if n := len(t.idle); n > 0 {
		s = t.idle[n-1]
		t.idle = t.idle[:n-1]
	} else {
		flags := uint(pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION)
		h, err := t.mod.ctx.OpenSession(t.slot, flags)
		if err != nil {
			if classify(err) == failToken || classify(err) == failNotInModul {
				t.found = false
			}
			return session{}, fmt.Errorf("opening a session on %s: %w", t.sel, err)
		}
		s = session{h: h, gen: t.sessGen}
	}
	if !t.loggedIn && pins != nil {
		if err := t.login(ctx, s.h, *pins); err != nil {
			t.idle = append(t.idle, s)
			return session{}, err
		}
	}
	return s, nil
}

// login logs the user in once for the whole application, with the PIN from
// pins (ctx goes to a WithPIN function). A PIN the token rejected before is
// refused without being sent: wrong PINs lock tokens. The caller holds t.mu.
func (t *Token) login(ctx context.Context, h pkcs11.SessionHandle, pins pinSource) error {
	if t.info.Flags&pkcs11.CKF_LOGIN_REQUIRED == 0 {
		t.loggedIn = true
		return nil
	}
	userPIN, err := pins.get(ctx, t.describe())
	if err != nil {
		return err
	}
	userPIN = t.profile.formatPIN(userPIN)
	if t.rejected.has(userPIN) {
		return fmt.Errorf("%w: %s rejected this PIN before; not sent again, since wrong PINs lock tokens", ErrPIN, t.sel)
	}
	err = t.mod.ctx.Login(h, pkcs11.CKU_USER, userPIN)
	switch {
	case err == nil, isRV(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		t.loggedIn = true
		return nil
	case isRV(err, pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE):
		t.rejected.add(userPIN)
		return fmt.Errorf("%w: %s rejected the PIN (%v); it will not be sent again, since wrong PINs lock tokens", ErrPIN, t.sel, err)
	case isRV(err, pkcs11.CKR_PIN_LOCKED):
		t.pinErr = fmt.Errorf("%w: the PIN of %s is locked; the security officer must unlock it", ErrPIN, t.sel)
		return t.pinErr
	}
	return fmt.Errorf("logging in to %s: %w", t.sel, err)
}

// release returns a session to the pool, or drops it if its generation is
// over.
func (t *Token) release(s session) {
	t.mu.Lock()
	if s.gen == t.sessGen {
		t.idle = append(t.idle, s)
	}
	t.mu.Unlock()
	<-t.sem
}

// discard forgets a session that is no longer valid (it is not closed: it
// is gone already, and closing under concurrency crashes some tokens).
func (t *Token) discard(s session) { <-t.sem }

// reset drops every session and the login after the token or the module
// went away, so the next acquire finds the token again.
func (t *Token) reset(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.sessGen {
		return // someone reset already
	}
	t.resetLocked()
}

// forget is reset for a caller that holds no session: the module is about to
// be re-initialized (Module.retryTorn).
func (t *Token) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resetLocked()
}

// resetLocked drops every session, the login, the slot and cached handles.
// The caller holds t.mu.
func (t *Token) resetLocked() {
	t.sessGen++
	t.objGen++
	t.idle = nil
	t.found, t.loggedIn = false, false
	t.mechs = nil
}

// dropSessions forgets every pooled session and the login, keeping the slot.
func (t *Token) dropSessions(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.sessGen {
		return
	}
	t.sessGen++
	t.idle = nil
	t.loggedIn = false
}

// objectGeneration returns the generation cached object handles must match.
func (t *Token) objectGeneration() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.objGen
}

func (t *Token) staleObjects(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.objGen == gen {
		t.objGen++
	}
}

// do runs fn on a logged-in session, recovering from lost sessions, lost
// logins, a token that went away and came back, and a finalized module:
// fn runs at most three times. fn must be safe to repeat. ctx bounds the
// wait for a session and goes to a WithPIN function; a login takes its PIN
// from pins (nil: fn reads public objects only, and nothing logs in).
func (t *Token) do(ctx context.Context, pins *pinSource, fn func(h pkcs11.SessionHandle, objGen uint64) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		objGen := t.objectGeneration()
		var s session
		err = t.mod.retryTorn(func() error {
			var aerr error
			if s, aerr = t.acquire(ctx, pins); t.mod.tornRead(aerr) {
				t.forget()
			}
			return aerr
		})
		if err != nil {
			return err
		}
		err = fn(s.h, objGen)
		switch classify(err) {
		case failNone, failOther:
			t.release(s)
			return err
		case failSession:
			// One lost session usually means all of them (C_CloseAllSessions,
			// which also logs out): start the pool afresh.
			t.discard(s)
			t.dropSessions(s.gen)
		case failLogin:
			t.mu.Lock()
			t.loggedIn = false
			t.mu.Unlock()
			t.release(s)
		case failObject:
			t.staleObjects(objGen)
			t.release(s)
		case failToken:
			t.discard(s)
			t.reset(s.gen)
		case failNotInModul:
			t.discard(s)
			if rerr := t.mod.reinitialize(t.modGenOf()); rerr != nil {
				return rerr
			}
			t.reset(s.gen)
		case failKeyVanished:
			t.discard(s)
			if rerr := t.mod.rescan(t.modGenOf()); rerr != nil {
				return rerr
			}
			t.reset(s.gen)
		}
	}
	if classify(err) == failToken || classify(err) == failNotInModul {
		return fmt.Errorf("%w: %s: %v", ErrTokenGone, t.sel, err)
	}
	return err
}

func (t *Token) modGenOf() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.modGen
}

// listBounded joins at most n items, saying how many more there are.
func listBounded(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
