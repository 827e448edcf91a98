package hsm

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// nssDefaultInitArgs opens NSS softokn without any database: a throw-away
// token, the "NSS Generic Crypto Services" slot.
const nssDefaultInitArgs = "configdir='' certPrefix='' keyPrefix='' secmod='' flags=readOnly,noCertDB,noModDB,forceOpen,optimizeSpace"

// Module is a loaded and initialized PKCS#11 library. One Module exists per
// library path in a process; it is shared by every token and KEK that uses
// it (PKCS#11 contexts are safe for concurrent use with OS locking).
type Module struct {
	path     string
	initArgs string
	profile  *Profile // by the library's manufacturer (C_GetInfo) or file name

	mu         sync.Mutex
	ctx        *pkcs11.Ctx
	gen        uint64    // bumped on every re-initialization
	lastRescan time.Time // when rescan last re-initialized
}

// rescanInterval bounds how often rescan re-initializes a module.
const rescanInterval = 2 * time.Second

var modules = struct {
	sync.Mutex
	m map[string]*Module
}{m: map[string]*Module{}}

// LoadModule returns the module at path, loading and initializing it on
// first use. initArgs is passed to C_Initialize as pReserved (NSS softokn
// needs one; empty means the default, which for libsoftokn3 is a no-database
// configuration). A module already loaded is returned as it is.
func LoadModule(path, initArgs string) (*Module, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrModule, path, err)
	}
	modules.Lock()
	defer modules.Unlock()
	if m, ok := modules.m[abs]; ok {
		return m, nil
	}
	if initArgs == "" && strings.HasPrefix(filepath.Base(abs), "libsoftokn3") {
		initArgs = nssDefaultInitArgs
	}
	m := &Module{path: abs, initArgs: initArgs}
	if err := m.initialize(); err != nil {
		return nil, err
	}
	var lib pkcs11.TokenInfo
	if info, err := m.ctx.GetInfo(); err == nil {
		lib.ManufacturerID = info.ManufacturerID
	}
	m.profile = selectProfile(lib, abs)
	modules.m[abs] = m
	return m, nil
}

// initialize loads the library if needed and calls C_Initialize. The caller
// holds m.mu or owns m exclusively.
func (m *Module) initialize() error {
	if m.ctx == nil {
		m.ctx = pkcs11.New(m.path)
		if m.ctx == nil {
			return fmt.Errorf("%w %s: cannot load it: %s", ErrModule, m.path, loadFailure(m.path))
		}
	}
	var err error
	if m.initArgs != "" {
		args := append([]byte(m.initArgs), 0)
		err = m.ctx.Initialize(pkcs11.InitializeWithReserved(unsafe.Pointer(&args[0])))
	} else {
		err = m.ctx.Initialize()
	}
	if err != nil && !isRV(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return fmt.Errorf("%w %s: C_Initialize: %v", ErrModule, m.path, err)
	}
	m.gen++
	return nil
}

// reinitialize runs C_Initialize again after the module was finalized behind
// our back, unless another caller already did since generation gen.
func (m *Module) reinitialize(gen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return nil
	}
	return m.initialize()
}

// rescan re-initializes the module (C_Finalize, C_Initialize) so that it
// sees its tokens afresh, unless another caller did since generation gen
// or a rescan ran within rescanInterval. Every session of every token of
// the module is lost; Token.do recovers them.
func (m *Module) rescan(gen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen || time.Since(m.lastRescan) < rescanInterval {
		return nil
	}
	return m.restartLocked()
}

// restart re-initializes the module (C_Finalize, C_Initialize) unless
// another caller did since generation gen, without rescan's rate limit:
// for the bounded retries after a torn read (Profile.TornReads).
func (m *Module) restart(gen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return nil
	}
	return m.restartLocked()
}

// restartLocked runs C_Finalize and C_Initialize. The caller holds m.mu.
func (m *Module) restartLocked() error {
	m.lastRescan = time.Now()
	m.ctx.Finalize() // an error means it was not initialized: initialize anyway
	return m.initialize()
}

// initTokenHint says how to make a token in the module.
func (m *Module) initTokenHint() string {
	if m.profile.InitToken != "" {
		return "make one with " + m.profile.InitToken
	}
	return "initialize one with the vendor's tool"
}

// Path returns the library path.
func (m *Module) Path() string { return m.path }

// Ctx returns the underlying miekg/pkcs11 context, for callers that need a
// PKCS#11 call this package does not wrap. The module stays initialized.
func (m *Module) Ctx() *pkcs11.Ctx { return m.ctx }

// generation returns the current initialization generation.
func (m *Module) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Finalize calls C_Finalize and forgets the module, for tests and tools that
// are done with it. Tokens and KEKs opened from it stop working.
func (m *Module) Finalize() error {
	modules.Lock()
	delete(modules.m, m.path)
	modules.Unlock()
	tokens.forget(m)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ctx.Finalize()
}
