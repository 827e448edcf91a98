package tpm

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// PersistentSRK is the handle of the SRK that provisioning tools make
// persistent (TCG provisioning guidance); it is used when it fits the ECC
// P-256 SRK template.
const PersistentSRK tpm2.TPMHandle = 0x81000001

// srk is a loaded primary key that sessions are salted with: the storage
// root key, or (tpm:ek) the endorsement key, whose parent() is not used.
type srk struct {
	handle     tpm2.TPMHandle
	name       tpm2.TPM2BName
	pub        tpm2.TPMTPublic
	persistent bool
}

// parent returns the SRK as the parent of a Load or Create. Its auth value
// is empty (the template's and the provisioning guidance's); the password
// session then carries no secret.
func (s *srk) parent() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: s.handle, Name: s.name, Auth: tpm2.PasswordAuth(nil)}
}

// hmacIn returns a salted HMAC session whose command parameter is encrypted
// (for Create: the sensitive data goes in encrypted).
func (s *srk) hmacIn(auth []byte) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(auth), tpm2.Salted(s.handle, s.pub), tpm2.AESEncryption(128, tpm2.EncryptIn))
}

// hmacOut returns a salted HMAC session whose response parameter is
// encrypted (for Unseal, RSA_Decrypt, ECDH_ZGen: the secret comes out
// encrypted).
func (s *srk) hmacOut(auth []byte) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(auth), tpm2.Salted(s.handle, s.pub), tpm2.AESEncryption(128, tpm2.EncryptOut))
}

// policyOut returns a salted policy session with an encrypted response
// parameter that satisfies p (PolicyPCR, then PolicyAuthValue with auth).
func (s *srk) policyOut(p policy, auth []byte) tpm2.Session {
	opts := []tpm2.AuthOption{tpm2.Salted(s.handle, s.pub), tpm2.AESEncryption(128, tpm2.EncryptOut)}
	if p.pin {
		opts = append(opts, tpm2.Auth(auth))
	}
	return tpm2.Policy(tpm2.TPMAlgSHA256, 16, p.callback(), opts...)
}

// loadSRK returns the persistent SRK if it fits the template, else creates
// one from tpm2.ECCSRKTemplate (deterministic: the same TPM and owner seed
// give the same key and name). The public area comes from the TPM's
// response: it is used only if it hashes to the name in that same response
// (see verifySRK).
func loadSRK(t transport.TPM) (*srk, error) {
	if rp, err := (tpm2.ReadPublic{ObjectHandle: PersistentSRK}).Execute(t); err == nil {
		if pub, err := rp.OutPublic.Contents(); err == nil && fitsTemplate(pub) {
			if err := verifySRK(pub, rp.Name.Buffer, "TPM2_ReadPublic"); err != nil {
				return nil, err
			}
			return &srk{handle: PersistentSRK, name: rp.Name, pub: *pub, persistent: true}, nil
		}
	} else if isLink(err) {
		return nil, err
	}
	return createSRK(t)
}

// createSRK makes the SRK from the template under the owner hierarchy.
func createSRK(t transport.TPM) (*srk, error) {
	rsp, err := (tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}).Execute(t)
	if err != nil {
		if isAuthFail(err) {
			return nil, fmt.Errorf("TPM2_CreatePrimary: the owner hierarchy has an authorization value; provision a persistent ECC P-256 SRK at %#x (tpm2_createprimary -C o -G ecc256:aes128cfb, tpm2_evictcontrol -c ... %#x): %w", uint32(PersistentSRK), uint32(PersistentSRK), err)
		}
		return nil, fmt.Errorf("TPM2_CreatePrimary (ECC P-256 SRK): %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		flushHandle(t, rsp.ObjectHandle)
		return nil, fmt.Errorf("SRK public area: %w", err)
	}
	if !fitsTemplate(pub) {
		flushHandle(t, rsp.ObjectHandle)
		return nil, fmt.Errorf("%w: TPM2_CreatePrimary returned an SRK that is not the ECC P-256 template key hsmenv asked for", ErrTampered)
	}
	if err := verifySRK(pub, rsp.Name.Buffer, "TPM2_CreatePrimary"); err != nil {
		flushHandle(t, rsp.ObjectHandle)
		return nil, err
	}
	return &srk{handle: rsp.ObjectHandle, name: rsp.Name, pub: *pub}, nil
}

// verifySRK checks that the SRK public area pub, which salted sessions
// encrypt their salt to, is the one the TPM's name for the SRK commits to:
// name = nameAlg || H(public area). Without this, something on the TPM link
// could return its own key with the SRK's genuine name, decrypt every
// session salt and read the data keys that cross the link. Names are what
// EDKs, key files and srk= record, so a verified name ties the session key
// to the SRK they name. what is the command whose response is checked.
func verifySRK(pub *tpm2.TPMTPublic, name []byte, what string) error {
	want, err := tpm2.ObjectName(pub)
	if err != nil {
		return fmt.Errorf("%w: %s: the SRK's name cannot be computed from its public area: %v", ErrTampered, what, err)
	}
	if !bytes.Equal(want.Buffer, name) {
		return fmt.Errorf("%w: %s: the TPM's SRK public key does not match its name %s (the key hashes to %s): something between hsmenv and the TPM altered the response; nothing was sent under it",
			ErrTampered, what, shortName(name), shortName(want.Buffer))
	}
	return nil
}

// fitsTemplate reports whether pub has the type, name algorithm, attributes
// and parameters of tpm2.ECCSRKTemplate (its unique point is the key's own).
func fitsTemplate(pub *tpm2.TPMTPublic) bool {
	want := tpm2.ECCSRKTemplate
	if pub.Type != want.Type || pub.NameAlg != want.NameAlg || pub.ObjectAttributes != want.ObjectAttributes || len(pub.AuthPolicy.Buffer) != 0 {
		return false
	}
	got, err := pub.Parameters.ECCDetail()
	if err != nil {
		return false
	}
	w, _ := want.Parameters.ECCDetail()
	return bytes.Equal(tpm2.Marshal(*got), tpm2.Marshal(*w))
}

// srkFor returns the loaded SRK whose name is name: the connection's SRK,
// or, when that is the persistent one, the SRK made from the template. It
// fails with ErrDifferentTPM when neither has that name.
func (c *conn) srkFor(name []byte) (*srk, error) {
	if bytes.Equal(c.srk.name.Buffer, name) {
		return c.srk, nil
	}
	if c.srk.persistent {
		if !c.tmplTried {
			s, err := createSRK(c.l)
			if err != nil {
				return nil, err
			}
			c.tmplTried, c.tmplName = true, s.name.Buffer
			if bytes.Equal(s.name.Buffer, name) {
				c.tmpl = s
			} else {
				flushHandle(c.l, s.handle)
			}
		}
		if c.tmpl != nil && bytes.Equal(c.tmpl.name.Buffer, name) {
			return c.tmpl, nil
		}
	}
	have := "SRK " + shortName(c.srk.name.Buffer)
	if c.tmplTried {
		have = "SRKs " + shortName(c.srk.name.Buffer) + " (persistent) and " + shortName(c.tmplName) + " (from the template)"
	}
	return nil, fmt.Errorf("%w: made under SRK %s, this TPM has %s (another TPM, or this one was cleared)",
		ErrDifferentTPM, shortName(name), have)
}

// shortName abbreviates an object name (hash algorithm + digest) for
// messages.
func shortName(name []byte) string {
	if len(name) > 10 {
		return hex.EncodeToString(name[:10]) + "..."
	}
	return hex.EncodeToString(name)
}
