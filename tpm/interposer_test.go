package tpm_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// This file attacks hsmenv from the TPM link: a loopback proxy in front of
// swtpm's data port (as a bus interposer, or anyone on the path to a
// networked swtpm, would sit) that parses TPM command and response frames
// and rewrites them.
//
// The main attack: replace the SRK's public area in TPM2_ReadPublic and
// TPM2_CreatePrimary responses with the attacker's own P-256 point while
// keeping the SRK's genuine name. A client that takes the public area on
// trust encrypts every session salt to the attacker. The proxy then loads
// the attacker's private key into the real TPM (TPM2_LoadExternal, null
// hierarchy), rewrites StartAuthSession's tpmKey to it (StartAuthSession has
// no authorization, so nothing notices), derives the session key from the
// salt it decrypts (KDFe, then KDFa "ATH": TPM 2.0 Part 1, 19.6) and
// decrypts the AES-128-CFB parameter encryption of TPM2_Create (the data key
// going in), TPM2_Unseal, TPM2_RSA_Decrypt and TPM2_ECDH_ZGen (the data key,
// or the ECDH secret, coming out). Both sides see valid HMACs: the TPM and
// the client share the session key, and so does the attacker.

// interposer modes.
type attack int

const (
	passThrough attack = iota
	// swapPublic replaces the SRK's public area (genuine name kept) and
	// hijacks the sessions salted to it.
	swapPublic
	// fakeSRK presents the attacker's key as the SRK, with its own
	// (consistent) name: what trust on first use cannot tell from the real
	// SRK. It fixes the command HMAC of TPM2_Create to the genuine SRK's
	// name, which the TPM checks.
	fakeSRK
	// swapLoad loads another object (loadBlob) in place of the one
	// TPM2_Load carries; the TPM answers with that object's handle and
	// name.
	swapLoad
	// fakePCRs returns other values from TPM2_PCR_Read.
	fakePCRs
)

type interposer struct {
	t      testing.TB
	up     string
	ln     net.Listener
	mode   attack
	key    *ecdh.PrivateKey // the attacker's P-256 key
	keyPub tpm2.TPMTPublic  // its public area, as loaded with LoadExternal
	// loadBlob is TPM2B_PRIVATE || TPM2B_PUBLIC of the object swapLoad
	// loads instead.
	loadBlob []byte
	// alterCreated (with fakeSRK, whose session key the attacker knows)
	// changes the attributes of the object TPM2_Create returns and signs
	// the response anew.
	alterCreated bool

	mu        sync.Mutex
	counts    map[tpm2.TPMCC]int
	srks      map[uint32][]byte // SRK handles seen, and their genuine names
	sessions  map[uint32]*hijackedSession
	hijacked  int      // sessions redirected to the attacker's key
	recovered [][]byte // plaintexts read out of parameter encryption
	swapped   int      // SRK public areas replaced
	conns     []net.Conn
}

type hijackedSession struct {
	key, nonceTPM []byte
}

// startInterposer listens on a free loopback port and forwards each
// connection, one at a time (as swtpm serves them), to sw's data port. opts
// set the attack's parameters before it starts.
func startInterposer(t testing.TB, sw *tpmtest.SWTPM, mode attack, opts ...func(*interposer)) *interposer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt := key.PublicKey().Bytes()
	p := &interposer{
		t: t, up: "127.0.0.1:" + strconv.Itoa(sw.Port), ln: ln, mode: mode, key: key,
		counts: map[tpm2.TPMCC]int{}, srks: map[uint32][]byte{}, sessions: map[uint32]*hijackedSession{},
	}
	p.keyPub = tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgECC,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{Decrypt: true, UserWithAuth: true, NoDA: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   tpm2.TPMECCNistP256,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: pt[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: pt[33:]},
		}),
	}
	for _, o := range opts {
		o(p)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		<-done
	})
	return p
}

// Device is the hsmenv device string of the proxy.
func (p *interposer) Device() string { return "tcp://" + p.ln.Addr().String() }

// stats returns how many sessions were hijacked and what was recovered.
func (p *interposer) stats() (hijacked int, recovered [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hijacked, append([][]byte(nil), p.recovered...)
}

func (p *interposer) count(cc tpm2.TPMCC) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[cc]
}

// holds reports whether secret is among the recovered plaintexts.
func (p *interposer) holds(secret []byte) bool {
	_, rec := p.stats()
	for _, r := range rec {
		if bytes.Equal(r, secret) {
			return true
		}
	}
	return false
}

// frameConn sends raw commands on a stream and reads responses: a
// transport.TPM for the proxy's own commands, and for bare clients.
type frameConn struct{ c net.Conn }

func (f frameConn) Send(cmd []byte) ([]byte, error) {
	if _, err := f.c.Write(cmd); err != nil {
		return nil, err
	}
	return readFrame(f.c)
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [10]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[2:6])
	if n < 10 || n > 1<<20 {
		return nil, fmt.Errorf("frame size %d", n)
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	_, err := io.ReadFull(r, b[10:])
	return b, err
}

func (p *interposer) serve(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.up)
	if err != nil {
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	for {
		cmd, err := readFrame(c)
		if err != nil {
			return
		}
		cmd, after := p.command(frameConn{up}, cmd)
		if _, err := up.Write(cmd); err != nil {
			return
		}
		rsp, err := readFrame(up)
		if err != nil {
			return
		}
		if after != nil {
			rsp = after(frameConn{up}, rsp)
		}
		if _, err := c.Write(rsp); err != nil {
			return
		}
	}
}

// Handle counts of the commands the proxy reads.
var cmdHandleCount = map[tpm2.TPMCC]int{
	tpm2.TPMCCCreate: 1, tpm2.TPMCCLoad: 1, tpm2.TPMCCUnseal: 1, tpm2.TPMCCRSADecrypt: 1,
	tpm2.TPMCCECDHZGen: 1, tpm2.TPMCCCreatePrimary: 1, tpm2.TPMCCReadPublic: 1,
}

var rspHandleCount = map[tpm2.TPMCC]int{tpm2.TPMCCCreatePrimary: 1, tpm2.TPMCCLoad: 1, tpm2.TPMCCStartAuthSession: 1}

// sessionUse is a hijacked session's entry in a command's auth area.
type sessionUse struct {
	handle      uint32
	nonceCaller []byte
	attrs       byte
	hmacAt      int // offset of the HMAC in the command
}

// reader reads TPM marshalling.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) n(k int) []byte {
	if r.bad || r.off+k > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[r.off : r.off+k]
	r.off += k
	return v
}
func (r *reader) u8() byte {
	if v := r.n(1); v != nil {
		return v[0]
	}
	return 0
}
func (r *reader) u16() int {
	if v := r.n(2); v != nil {
		return int(binary.BigEndian.Uint16(v))
	}
	return 0
}
func (r *reader) u32() uint32 {
	if v := r.n(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}
func (r *reader) b2() []byte { return r.n(r.u16()) }

// frame assembles a command or response: header tag, rc/cc, then body.
func frame(tag uint16, code uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, tag)
	b = binary.BigEndian.AppendUint32(b, uint32(10+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

func b2(v []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(v))), v...) }

// substituteSRK records name as the genuine name of the SRK at handle,
// counts a swap, and returns the public area to hand out in place of pub
// (attackerSRK).
func (p *interposer) substituteSRK(handle uint32, name, pub []byte) []byte {
	p.mu.Lock()
	p.srks[handle] = bytes.Clone(name)
	p.swapped++
	p.mu.Unlock()
	return p.attackerSRK(pub)
}

// attackerSRK returns the SRK public area pub with the attacker's point.
func (p *interposer) attackerSRK(pub []byte) []byte {
	tp, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		p.t.Errorf("interposer: SRK public area: %v", err)
		return pub
	}
	tp.Unique = p.keyPub.Unique
	return tpm2.Marshal(*tp)
}

func nameOf(pub []byte) []byte {
	sum := sha256.Sum256(pub)
	return append([]byte{0, 0x0b}, sum[:]...)
}

// command inspects and rewrites a command; after, if not nil, inspects and
// rewrites its response.
func (p *interposer) command(up transport.TPM, cmd []byte) ([]byte, func(transport.TPM, []byte) []byte) {
	tag := binary.BigEndian.Uint16(cmd)
	cc := tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10]))
	p.mu.Lock()
	p.counts[cc]++
	p.mu.Unlock()
	attacking := p.mode == swapPublic || p.mode == fakeSRK

	switch {
	case cc == tpm2.TPMCCReadPublic && attacking:
		handle := binary.BigEndian.Uint32(cmd[10:14])
		return cmd, func(_ transport.TPM, rsp []byte) []byte {
			if binary.BigEndian.Uint32(rsp[6:10]) != 0 || handle != 0x81000001 {
				return rsp
			}
			r := &reader{b: rsp, off: 10}
			pub, name, qn := r.b2(), r.b2(), r.b2()
			if r.bad {
				return rsp
			}
			newPub := p.substituteSRK(handle, name, pub)
			if p.mode == fakeSRK {
				name, qn = nameOf(newPub), nameOf(newPub)
			}
			return frame(binary.BigEndian.Uint16(rsp), 0, append(append(b2(newPub), b2(name)...), b2(qn)...))
		}

	case cc == tpm2.TPMCCCreatePrimary && attacking:
		return cmd, func(_ transport.TPM, rsp []byte) []byte {
			if binary.BigEndian.Uint32(rsp[6:10]) != 0 {
				return rsp
			}
			r := &reader{b: rsp, off: 10}
			handle := r.u32()
			psize := int(r.u32())
			start := r.off
			pub, cdata, chash := r.b2(), r.b2(), r.b2()
			ticket := r.n(6)
			ticket = append(bytes.Clone(ticket), b2(r.b2())...)
			name := r.b2()
			if r.bad || r.off != start+psize {
				p.t.Errorf("interposer: CreatePrimary response does not parse")
				return rsp
			}
			auth := rsp[r.off:]
			newPub := p.substituteSRK(handle, name, pub)
			if p.mode == fakeSRK {
				name = nameOf(newPub)
			}
			params := append(append(append(b2(newPub), b2(cdata)...), b2(chash)...), ticket...)
			params = append(params, b2(name)...)
			body := binary.BigEndian.AppendUint32(nil, handle)
			body = binary.BigEndian.AppendUint32(body, uint32(len(params)))
			body = append(append(body, params...), auth...)
			return frame(binary.BigEndian.Uint16(rsp), 0, body)
		}

	case cc == tpm2.TPMCCStartAuthSession && attacking:
		return p.hijack(up, cmd)

	case cc == tpm2.TPMCCLoad && p.mode == swapLoad:
		r := &reader{b: cmd, off: 10}
		r.u32()
		authSize := int(r.u32())
		end := r.off + authSize
		if r.bad || end > len(cmd) {
			return cmd, nil
		}
		return frame(tag, uint32(cc), append(bytes.Clone(cmd[10:end]), p.loadBlob...)), nil

	case cc == tpm2.TPMCCPCRRead && p.mode == fakePCRs:
		return cmd, func(_ transport.TPM, rsp []byte) []byte {
			r := &reader{b: rsp, off: 10}
			r.u32() // pcrUpdateCounter
			for n := r.u32(); n > 0 && !r.bad; n-- {
				r.u16()
				r.n(int(r.u8()))
			}
			for n := r.u32(); n > 0 && !r.bad; n-- {
				for i := range r.b2() {
					rsp[r.off-1-i] ^= 0xA5 // values of the attacker's choice
				}
			}
			return rsp
		}
	}

	if tag != uint16(tpm2.TPMSTSessions) {
		return cmd, nil
	}
	nh, ok := cmdHandleCount[cc]
	if !ok {
		return cmd, nil
	}
	// The auth area: the hijacked session, if any.
	r := &reader{b: cmd, off: 10}
	var names [][]byte
	for i := 0; i < nh; i++ {
		names = append(names, r.n(4))
	}
	authSize := int(r.u32())
	authEnd := r.off + authSize
	var use *sessionUse
	for !r.bad && r.off < authEnd {
		h := r.u32()
		nonce := r.b2()
		attrs := r.u8()
		at := r.off + 2
		r.b2()
		p.mu.Lock()
		_, mine := p.sessions[h]
		p.mu.Unlock()
		if mine && use == nil {
			use = &sessionUse{handle: h, nonceCaller: bytes.Clone(nonce), attrs: attrs, hmacAt: at}
		}
	}
	if r.bad || use == nil {
		return cmd, nil
	}
	params := cmd[authEnd:]
	p.mu.Lock()
	s := p.sessions[use.handle]
	genuine := p.srks[binary.BigEndian.Uint32(names[0])]
	p.mu.Unlock()

	if cc == tpm2.TPMCCCreate && use.attrs&0x20 != 0 && len(params) >= 2 {
		// The sensitive data going in: TPMS_SENSITIVE_CREATE = userAuth,
		// data.
		in := bytes.Clone(params[2 : 2+int(binary.BigEndian.Uint16(params))])
		cfb(s.key, use.nonceCaller, s.nonceTPM, in)
		sr := &reader{b: in}
		sr.b2()
		if data := sr.b2(); !sr.bad && len(data) > 0 {
			p.record(data)
		}
		if p.mode == fakeSRK && genuine != nil {
			// The client put the fake SRK's name in the cpHash; the TPM
			// checks the real one. The attacker knows the HMAC key.
			cp := sha256.New()
			cp.Write(cmd[6:10])
			cp.Write(genuine)
			cp.Write(params)
			mac := hmac.New(sha256.New, s.key)
			mac.Write(cp.Sum(nil))
			mac.Write(use.nonceCaller)
			mac.Write(s.nonceTPM)
			mac.Write([]byte{use.attrs})
			cmd = bytes.Clone(cmd)
			copy(cmd[use.hmacAt:], mac.Sum(nil))
		}
	}
	return cmd, func(_ transport.TPM, rsp []byte) []byte {
		if binary.BigEndian.Uint32(rsp[6:10]) != 0 || binary.BigEndian.Uint16(rsp) != uint16(tpm2.TPMSTSessions) {
			return rsp
		}
		rr := &reader{b: rsp, off: 10 + 4*rspHandleCount[cc]}
		params := rr.n(int(rr.u32()))
		nonceTPM := rr.b2()
		attrs := rr.u8()
		if rr.bad {
			return rsp
		}
		hmacAt := rr.off + 2
		p.mu.Lock()
		s.nonceTPM = bytes.Clone(nonceTPM)
		if attrs&1 == 0 {
			delete(p.sessions, use.handle)
		}
		p.mu.Unlock()
		if cc == tpm2.TPMCCCreate && p.alterCreated && len(params) > 8 {
			// Set STClear (attribute bit 2) in outPublic (TPMT_PUBLIC:
			// type, nameAlg, attributes), and sign the response anew
			// with the session key the attacker knows.
			rsp = bytes.Clone(rsp)
			start := 10 + 4*rspHandleCount[cc] + 4 // the parameters: outPrivate, outPublic, ...
			pub := start + 2 + int(binary.BigEndian.Uint16(rsp[start:]))
			rsp[pub+2+4+3] |= 1 << 2 // outPublic: size, type, nameAlg, attributes (u32)
			rp := sha256.New()
			rp.Write(make([]byte, 4)) // TPM_RC_SUCCESS
			rp.Write(cmd[6:10])
			rp.Write(rsp[start : start+len(params)])
			mac := hmac.New(sha256.New, s.key)
			mac.Write(rp.Sum(nil))
			mac.Write(nonceTPM)
			mac.Write(use.nonceCaller)
			mac.Write([]byte{attrs})
			copy(rsp[hmacAt:], mac.Sum(nil))
			return rsp
		}
		if use.attrs&0x40 == 0 || len(params) < 2 {
			return rsp
		}
		out := bytes.Clone(params[2 : 2+int(binary.BigEndian.Uint16(params))])
		cfb(s.key, nonceTPM, use.nonceCaller, out)
		switch cc {
		case tpm2.TPMCCUnseal, tpm2.TPMCCRSADecrypt:
			p.record(out)
		case tpm2.TPMCCECDHZGen: // TPMS_ECC_POINT: the shared x, y
			pr := &reader{b: out}
			if x := pr.b2(); !pr.bad {
				p.record(x)
			}
		}
		return rsp
	}
}

func (p *interposer) record(secret []byte) {
	p.mu.Lock()
	p.recovered = append(p.recovered, bytes.Clone(secret))
	p.mu.Unlock()
}

// cfb decrypts a session-encrypted parameter in place: AES-128-CFB under
// KDFa(SHA-256, sessionKey || authValue (empty here), "CFB", nonceNewer,
// nonceOlder) (TPM 2.0 Part 1, 21.3).
func cfb(sessionKey, newer, older, b []byte) {
	keyIV := tpm2.KDFa(crypto.SHA256, sessionKey, "CFB", newer, older, 256)
	block, _ := aes.NewCipher(keyIV[:16])
	//lint:ignore SA1019 TPM parameter encryption is AES-CFB; this reads it as the attacker would
	cipher.NewCFBDecrypter(block, keyIV[16:]).XORKeyStream(b, b)
}

// hijack redirects a StartAuthSession salted to a known SRK handle to the
// attacker's key, loaded into the real TPM just for it, and derives the
// session key.
func (p *interposer) hijack(up transport.TPM, cmd []byte) ([]byte, func(transport.TPM, []byte) []byte) {
	r := &reader{b: cmd, off: 10}
	tpmKey := r.u32()
	r.u32() // bind
	nonceCaller := bytes.Clone(r.b2())
	encSalt := r.b2()
	p.mu.Lock()
	_, isSRK := p.srks[tpmKey]
	p.mu.Unlock()
	if r.bad || !isSRK || len(encSalt) == 0 {
		return cmd, nil
	}
	// The salt was encrypted to the attacker's point: TPMS_ECC_POINT of
	// the client's ephemeral key.
	er := &reader{b: encSalt}
	ex, ey := er.b2(), er.b2()
	eph, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, ex...), ey...))
	if er.bad || err != nil {
		p.t.Errorf("interposer: encrypted salt: %v", err)
		return cmd, nil
	}
	z, err := p.key.ECDH(eph)
	if err != nil {
		p.t.Errorf("interposer: ECDH: %v", err)
		return cmd, nil
	}
	salt := tpm2.KDFe(crypto.SHA256, z, "SECRET", ex, p.key.PublicKey().Bytes()[1:33], 256)
	// Make the real TPM hold the attacker's key (3 transient slots on
	// swtpm: the SRK, the object in use, and this one).
	le, err := (tpm2.LoadExternal{
		InPrivate: tpm2.New2B(tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgECC,
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: p.key.Bytes()}),
		}),
		InPublic:  tpm2.New2B(p.keyPub),
		Hierarchy: tpm2.TPMRHNull,
	}).Execute(up)
	if err != nil {
		p.t.Errorf("interposer: TPM2_LoadExternal: %v", err)
		return cmd, nil
	}
	cmd = bytes.Clone(cmd)
	binary.BigEndian.PutUint32(cmd[10:], uint32(le.ObjectHandle))
	return cmd, func(up transport.TPM, rsp []byte) []byte {
		(tpm2.FlushContext{FlushHandle: le.ObjectHandle}).Execute(up)
		if binary.BigEndian.Uint32(rsp[6:10]) != 0 {
			p.t.Errorf("interposer: StartAuthSession with the attacker's key: rc %#x", binary.BigEndian.Uint32(rsp[6:10]))
			return rsp
		}
		rr := &reader{b: rsp, off: 10}
		h := rr.u32()
		nonceTPM := bytes.Clone(rr.b2())
		p.mu.Lock()
		p.sessions[h] = &hijackedSession{key: tpm2.KDFa(crypto.SHA256, salt, "ATH", nonceTPM, nonceCaller, 256), nonceTPM: nonceTPM}
		p.hijacked++
		p.mu.Unlock()
		return rsp
	}
}

// bareClient seals and unseals data through the proxy the way a client that
// trusts the SRK's public area would (go-tpm alone, no name check): the
// positive control that shows the interposer really reads data keys.
func bareClient(t *testing.T, p *interposer, dek []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tp := frameConn{c}
	cp, err := (tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}).Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer (tpm2.FlushContext{FlushHandle: cp.ObjectHandle}).Execute(tp)
	srkPub, err := cp.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	sealed := tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgKeyedHash,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, UserWithAuth: true, NoDA: true},
		Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		Unique:           tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{}),
	}
	cr, err := (tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: cp.ObjectHandle, Name: cp.Name,
			Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Salted(cp.ObjectHandle, *srkPub), tpm2.AESEncryption(128, tpm2.EncryptIn))},
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: dek}),
		}},
		InPublic: tpm2.New2B(sealed),
	}).Execute(tp)
	if err != nil {
		t.Fatalf("bare client: TPM2_Create: %v", err)
	}
	lr, err := (tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: cp.ObjectHandle, Name: cp.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    cr.OutPrivate, InPublic: cr.OutPublic,
	}).Execute(tp)
	if err != nil {
		t.Fatalf("bare client: TPM2_Load: %v", err)
	}
	defer (tpm2.FlushContext{FlushHandle: lr.ObjectHandle}).Execute(tp)
	us, err := (tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: lr.ObjectHandle, Name: lr.Name,
		Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Salted(cp.ObjectHandle, *srkPub), tpm2.AESEncryption(128, tpm2.EncryptOut))}}).Execute(tp)
	if err != nil {
		t.Fatalf("bare client: TPM2_Unseal: %v", err)
	}
	return us.OutData.Buffer
}

// ecdhDEK recovers the data key of an ECC key-file EDK (ESDK raw ECDH
// layout) from the ECDH secret z read off the link, as the attacker would
// with the EDK in hand; nil if z does not open it.
func ecdhDEK(z []byte, edk envelope.EncryptedDataKey) []byte {
	info, err := rawecdh.ParseInfo(edk.ProviderInfo)
	if err != nil || len(z) > 32 {
		return nil
	}
	padded := make([]byte, 32)
	copy(padded[32-len(z):], z)
	dek, err := rawecdh.Open(padded, info, edk, nil)
	if err != nil {
		return nil
	}
	return dek
}

// randomKey returns n random bytes.
func randomKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// wrapWith wraps dek under kek (empty encryption context).
func wrapWith(t *testing.T, kek envelope.KEK, dek []byte) envelope.EncryptedDataKey {
	t.Helper()
	edk, err := kek.Wrap(ctx, dek, nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return edk
}

// TestInterposerSubstitutedSRK: an interposer that hands out its own public
// key under the SRK's genuine name (from TPM2_CreatePrimary for the template
// SRK, from TPM2_ReadPublic for a persistent one) reads every data key of a
// client that trusts the public area: the bare go-tpm client here, as
// hsmenv did before it checked the name. hsmenv refuses with ErrTampered
// when sealing, unsealing and unwrapping with RSA and ECC key files, starts
// no session salted to the substituted key, and the interposer recovers
// nothing.
func TestInterposerSubstitutedSRK(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		name := "template-SRK"
		if persistent {
			name = "persistent-SRK"
		}
		t.Run(name, func(t *testing.T) {
			sw, direct := startTPM(t)
			if persistent {
				provisionSRK(t, direct)
			}
			dir := t.TempDir()
			dek := randomKey(32)
			// EDKs and key files made over the honest link.
			sealEDK := wrapWith(t, open(t, "tpm:seal?device="+direct.Path()), dek)
			rsaURI := keygen(t, dir, "rsa", tpm.KeyRSA2048, "", direct.Path(), "")
			eccURI := keygen(t, dir, "ecc", tpm.KeyECCP256, "", direct.Path(), "")
			rsaEDK := wrapWith(t, open(t, rsaURI), dek)
			eccEDK := wrapWith(t, open(t, eccURI), dek)
			direct.Close() // swtpm serves one connection at a time

			p := startInterposer(t, sw, swapPublic)
			// The control: a client that trusts the public area loses
			// the data key going in (Create) and coming out (Unseal),
			// and notices nothing.
			ctl := randomKey(32)
			if got := bareClient(t, p, ctl); !bytes.Equal(got, ctl) {
				t.Fatalf("bare client: unsealed %x, sealed %x", got, ctl)
			}
			hijacked, rec := p.stats()
			if hijacked != 2 || len(rec) != 2 || !bytes.Equal(rec[0], ctl) || !bytes.Equal(rec[1], ctl) {
				t.Fatalf("control: the interposer hijacked %d sessions and recovered %x; want 2 and the data key twice", hijacked, rec)
			}
			t.Logf("control: the interposer read the bare client's data key out of TPM2_Create and TPM2_Unseal")

			dev := p.Device()
			openDevice(t, dev)
			moved := func(uri string) string { return strings.Replace(uri, direct.Path(), dev, 1) }
			newDEK := randomKey(32)
			for _, op := range []struct {
				name string
				run  func() error
			}{
				{"seal", func() error {
					_, err := open(t, "tpm:seal;pin=yes?device="+dev+"&pin-value=1234").Wrap(ctx, newDEK, nil)
					return err
				}},
				{"unseal", func() error { _, err := open(t, "tpm:seal?device="+dev).Unwrap(ctx, sealEDK, nil); return err }},
				{"rsa-unwrap", func() error { _, err := open(t, moved(rsaURI)).Unwrap(ctx, rsaEDK, nil); return err }},
				{"ecc-unwrap", func() error { _, err := open(t, moved(eccURI)).Unwrap(ctx, eccEDK, nil); return err }},
			} {
				err := op.run()
				if !errors.Is(err, tpm.ErrTampered) || !strings.Contains(err.Error(), "does not match its name") || strings.Contains(err.Error(), "\n") {
					_, rec := p.stats()
					t.Errorf("%s through the interposer: err = %v; want ErrTampered (the interposer has recovered %d secrets so far)", op.name, err, len(rec)-2)
				} else if op.name == "seal" {
					t.Logf("%s: %v", op.name, err)
				}
			}
			hijacked, rec = p.stats()
			if hijacked != 2 {
				t.Errorf("hsmenv started %d sessions salted to the substituted key", hijacked-2)
			}
			for _, r := range rec[2:] {
				if bytes.Equal(r, dek) || bytes.Equal(r, newDEK) || bytes.Equal(ecdhDEK(r, eccEDK), dek) {
					t.Errorf("the interposer recovered a data key from hsmenv")
				}
			}
			if len(rec) > 2 {
				t.Errorf("the interposer decrypted %d parameters of hsmenv's sessions", len(rec)-2)
			}
			if p.count(tpm2.TPMCCCreate) != 1 || p.count(tpm2.TPMCCUnseal) != 1 || p.count(tpm2.TPMCCRSADecrypt) != 0 || p.count(tpm2.TPMCCECDHZGen) != 0 {
				t.Errorf("hsmenv sent commands after the SRK check failed: Create %d, Unseal %d, RSA_Decrypt %d, ECDH_ZGen %d (the control sent one Create and one Unseal)",
					p.count(tpm2.TPMCCCreate), p.count(tpm2.TPMCCUnseal), p.count(tpm2.TPMCCRSADecrypt), p.count(tpm2.TPMCCECDHZGen))
			}
		})
	}
}

// TestInterposerFakeSRK: an interposer that presents its own key as the SRK,
// name and all, cannot be told from the real SRK by a TPM seen for the first
// time. EDKs and key files record the SRK's name, so what was made over an
// honest link is refused (ErrDifferentTPM) without a session; srk= pins the
// name for new objects, and sealing is refused before anything is sent.
// Without srk=, a new seal trusts the SRK on first use: the interposer reads
// that data key (which is what srk= is for).
func TestInterposerFakeSRK(t *testing.T) {
	sw, direct := startTPM(t)
	name, err := direct.SRKName(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dek := randomKey(32)
	sealEDK := wrapWith(t, open(t, "tpm:seal?device="+direct.Path()), dek)
	keyURI := keygen(t, t.TempDir(), "ecc", tpm.KeyECCP256, "", direct.Path(), "")
	direct.Close()

	p := startInterposer(t, sw, fakeSRK)
	dev := p.Device()
	d := openDevice(t, dev)
	presented, err := d.SRKName(ctx)
	if err != nil || bytes.Equal(presented, name) {
		t.Fatalf("the interposer's SRK: %x, %v", presented, err)
	}

	pin := fmt.Sprintf(";srk=%x", name)
	if _, err := open(t, "tpm:seal"+pin+"?device="+dev).Wrap(ctx, randomKey(32), nil); !errors.Is(err, tpm.ErrDifferentTPM) {
		t.Errorf("pinned seal through a fake SRK: %v", err)
	} else {
		t.Logf("pinned seal: %v", err)
	}
	if _, err := tpm.Generate(ctx, "tpm:key-file="+filepath.Join(t.TempDir(), "k.tpmkey")+pin+"?device="+dev, tpm.KeyECCP256); !errors.Is(err, tpm.ErrDifferentTPM) {
		t.Errorf("pinned keygen through a fake SRK: %v", err)
	}
	if _, err := open(t, "tpm:seal?device="+dev).Unwrap(ctx, sealEDK, nil); !errors.Is(err, tpm.ErrDifferentTPM) {
		t.Errorf("unseal through a fake SRK: %v", err)
	}
	eccKEK := open(t, strings.Replace(keyURI, direct.Path(), dev, 1))
	if _, err := eccKEK.Unwrap(ctx, wrapWith(t, eccKEK, dek), nil); !errors.Is(err, tpm.ErrDifferentTPM) {
		t.Errorf("key-file unwrap through a fake SRK: %v", err)
	}
	if h, rec := p.stats(); h != 0 || len(rec) != 0 || p.count(tpm2.TPMCCCreate) != 0 || p.count(tpm2.TPMCCLoad) != 0 {
		t.Fatalf("refused operations still reached the TPM: %d sessions hijacked, %d secrets recovered, %d Create, %d Load",
			h, len(rec), p.count(tpm2.TPMCCCreate), p.count(tpm2.TPMCCLoad))
	}

	// Trust on first use, unpinned: the limit srk= removes.
	tofu := randomKey(32)
	if _, err := open(t, "tpm:seal?device="+dev).Wrap(ctx, tofu, nil); err != nil {
		t.Fatalf("unpinned seal through a fake SRK: %v", err)
	}
	if !p.holds(tofu) {
		t.Fatal("the interposer did not read the data key of an unpinned seal: the fake-SRK attack is broken")
	}
	// Likewise for an ECC key file made unpinned through it: the attacker
	// reads the ECDH secret of each unwrap, and with it (ecdhDEK, which
	// TestInterposerSubstitutedSRK relies on) the data key of the raw ECDH
	// EDK.
	keyKEK := open(t, keygen(t, t.TempDir(), "tofu", tpm.KeyECCP256, "", dev, ""))
	tofuEDK := wrapWith(t, keyKEK, tofu)
	if _, err := keyKEK.Unwrap(ctx, tofuEDK, nil); err != nil {
		t.Fatalf("unpinned key-file unwrap through a fake SRK: %v", err)
	}
	_, rec := p.stats()
	read := false
	for _, r := range rec {
		read = read || bytes.Equal(ecdhDEK(r, tofuEDK), tofu)
	}
	if !read {
		t.Fatal("the interposer did not recover the data key of a raw ECDH EDK unwrapped through an unpinned fake SRK: ecdhDEK or the attack is broken")
	}
}

// TestInterposerSwappedObject: an interposer that loads another object
// (sealed under the same SRK, with a data key of its choice) in place of
// the EDK's does not get hsmenv to accept that object's name: ErrTampered,
// where hsmenv used to unseal the attacker's data key.
func TestInterposerSwappedObject(t *testing.T) {
	sw, direct := startTPM(t)
	kek := open(t, "tpm:seal?device="+direct.Path())
	victim := wrapWith(t, kek, randomKey(32))
	chosen := randomKey(32)
	decoy := wrapWith(t, kek, chosen)
	direct.Close()

	// Load takes TPM2B_PRIVATE then TPM2B_PUBLIC; the EDK holds them the
	// other way round.
	ct := decoy.Ciphertext
	n := 2 + int(binary.BigEndian.Uint16(ct))
	p := startInterposer(t, sw, swapLoad, func(p *interposer) { p.loadBlob = append(bytes.Clone(ct[n:]), ct[:n]...) })
	openDevice(t, p.Device())
	got, err := open(t, "tpm:seal?device="+p.Device()).Unwrap(ctx, victim, nil)
	if !errors.Is(err, tpm.ErrTampered) || !strings.Contains(err.Error(), "TPM2_Load answered with the name") {
		t.Fatalf("unseal with a swapped object: %v (got the attacker's data key: %v)", err, bytes.Equal(got, chosen))
	}
	t.Logf("%v", err)
}

// TestInterposerPCRValues: TPM2_PCR_Read is unauthenticated; an interposer
// that returns other values would bind new objects to PCR values of its
// choice. The creation data of TPM2_Create (authenticated by the session)
// gives the PCRs' digest as the TPM saw it: sealing and keygen refuse.
func TestInterposerPCRValues(t *testing.T) {
	sw := tpmtest.Start(t)
	p := startInterposer(t, sw, fakePCRs)
	openDevice(t, p.Device())
	refusedWhenMade(t, p.Device(), ";pcrs=sha256:0,16", ";pcrs=16", "", "altered PCR values")
}

// TestSRKPin: srk= pins the SRK's name. keygen on tpm:seal prints the full
// name to pin; a pinned KEK works on its TPM, and another name is refused
// with ErrDifferentTPM before anything is sent: no TPM2_Create, no file.
func TestSRKPin(t *testing.T) {
	sw := tpmtest.Start(t)
	p := startInterposer(t, sw, passThrough) // counts commands
	dev := p.Device()
	d := openDevice(t, dev)
	name, err := d.SRKName(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full := fmt.Sprintf("%x", name)
	msg, err := tpm.Generate(ctx, "tpm:seal?device="+dev, "")
	if err != nil || !strings.Contains(msg, "srk="+full) {
		t.Fatalf("keygen tpm:seal does not print the full SRK name %s: %q, %v", full, msg, err)
	}
	t.Logf("%s", msg)
	other := bytes.Clone(name)
	other[len(other)-1] ^= 1
	bad := fmt.Sprintf(";srk=%x", other)
	good := ";srk=" + strings.ToUpper(full)

	pinned := open(t, "tpm:seal"+good+"?device="+dev)
	roundTrip(t, pinned)
	if _, err := tpm.Generate(ctx, "tpm:seal"+good+"?device="+dev, ""); err != nil {
		t.Fatalf("keygen tpm:seal with its own srk=: %v", err)
	}
	dir := t.TempDir()
	keyURI := keygen(t, dir, "k", tpm.KeyECCP256, good, dev, "")
	roundTrip(t, open(t, keyURI))

	creates := p.count(tpm2.TPMCCCreate)
	edk := wrapWith(t, open(t, "tpm:seal?device="+dev), randomKey(32))
	creates++
	for what, run := range map[string]func() error{
		"seal": func() error {
			_, err := open(t, "tpm:seal"+bad+"?device="+dev).Wrap(ctx, randomKey(32), nil)
			return err
		},
		"unseal": func() error {
			_, err := open(t, "tpm:seal"+bad+"?device="+dev).Unwrap(ctx, edk, nil)
			return err
		},
		"keygen": func() error {
			_, err := tpm.Generate(ctx, "tpm:key-file="+filepath.Join(dir, "x.tpmkey")+bad+"?device="+dev, tpm.KeyRSA2048)
			return err
		},
		"keygen-seal": func() error { _, err := tpm.Generate(ctx, "tpm:seal"+bad+"?device="+dev, ""); return err },
		"key-file": func() error {
			_, err := tpm.OpenURI(ctx, strings.Replace(keyURI, good, bad, 1))
			return err
		},
	} {
		if err := run(); !errors.Is(err, tpm.ErrDifferentTPM) || !strings.Contains(err.Error(), "pins srk=") {
			t.Errorf("%s with another srk=: %v", what, err)
		} else {
			t.Logf("%s: %v", what, err)
		}
	}
	if n := p.count(tpm2.TPMCCCreate); n != creates {
		t.Errorf("%d TPM2_Create sent for pinned KEKs of another SRK", n-creates)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.tpmkey")); err == nil {
		t.Error("keygen with another srk= wrote a key file")
	}
	for _, s := range []string{"tpm:seal;srk=zz", "tpm:seal;srk=000b", "tpm:seal;srk=" + strings.Repeat("00", 34)} {
		if _, err := tpm.ParseURI(s); !errors.Is(err, keyuri.ErrSyntax) {
			t.Errorf("%s: %v", s, err)
		}
	}
	u, err := tpm.ParseURI("tpm:seal" + good + "?device=" + dev)
	if err != nil || !strings.Contains(u.String(), "srk="+full) {
		t.Fatalf("String: %v %v", u, err)
	}
}

// TestInterposerAlteredCreate: what TPM2_Create returns must be the object
// asked for. An interposer cannot alter the response once the SRK is
// verified (the session HMAC covers it), so this runs where it can: a fake
// SRK, unpinned, whose session key the attacker knows. A sealed object with
// other attributes would be accepted into the EDK and fail only when
// unsealing (its name no longer matches its private area), and a key file
// would hold a public area the TPM refuses to load: both are refused when
// they are made (ErrTampered).
func TestInterposerAlteredCreate(t *testing.T) {
	sw := tpmtest.Start(t)
	p := startInterposer(t, sw, fakeSRK, func(p *interposer) { p.alterCreated = true })
	openDevice(t, p.Device())
	refusedWhenMade(t, p.Device(), "", "", "TPM2_Create returned", "an altered TPM2_Create response")
}

// refusedWhenMade checks that sealing (tpm:seal with sealAttrs) and making
// an ECC key file (with keyAttrs) through dev both fail with ErrTampered,
// the seal's error saying want, and that keygen writes no key file.
// altered says what the interposer altered.
func refusedWhenMade(t *testing.T, dev, sealAttrs, keyAttrs, want, altered string) {
	t.Helper()
	if _, err := open(t, "tpm:seal"+sealAttrs+"?device="+dev).Wrap(ctx, randomKey(32), nil); !errors.Is(err, tpm.ErrTampered) || !strings.Contains(err.Error(), want) {
		t.Fatalf("seal with %s: %v", altered, err)
	} else {
		t.Logf("%v", err)
	}
	path := filepath.Join(t.TempDir(), "k.tpmkey")
	if _, err := tpm.Generate(ctx, "tpm:key-file="+path+keyAttrs+"?device="+dev, tpm.KeyECCP256); !errors.Is(err, tpm.ErrTampered) {
		t.Fatalf("keygen with %s: %v", altered, err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("keygen wrote a key file from %s", altered)
	}
}
