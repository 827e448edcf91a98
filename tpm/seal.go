package tpm

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// ProviderSeal is the EDK provider id of sealed data keys.
//
// Provider info (version 1): version u8 = 1 | flags u8 (bit 0: PIN) |
// u16 length + SRK name | PCR count u8 | per PCR: index u8, its SHA-256
// value at seal time (32 bytes), ascending. Ciphertext: TPM2B_PUBLIC ||
// TPM2B_PRIVATE of the sealed keyed-hash object. See docs/tpm.md.
const ProviderSeal = "hsmenv-tpm-seal"

const (
	sealInfoV1     = 1
	flagPIN        = 1
	flagAuthorized = 4 // signed PCR policies: the authority's name follows the PCRs
	// maxDEK bounds the data keys the KEKs wrap (the ESDK's are 16 to 32
	// bytes).
	maxDEK = 128
)

// SealKEK seals each data key to the TPM's SRK as a keyed-hash sealed-data
// object, optionally bound to PCR values and a PIN. The DEK crosses the bus
// only inside salted, parameter-encrypted sessions. It is safe for
// concurrent use.
type SealKEK struct {
	dev  *Device
	pcrs []int
	pin  bool
	srk  []byte // srk=: the only SRK this KEK seals to and unseals from
	pins *pinCache
	desc string
	// authority (a key's name) seals to signed PCR sets instead; signed
	// are the signed sets Unwrap may use.
	authority []byte
	signed    []*signedPolicy
}

// OpenSeal returns the seal KEK of a parsed tpm:seal URI. Its PCRs and PIN
// flag apply to what Wrap seals; Unwrap follows what each EDK records. It
// does not reach the TPM. opts give the PIN callback and the default device
// (see Option).
func OpenSeal(u *URI, opts ...Option) (*SealKEK, error) {
	if !u.Seal {
		return nil, fmt.Errorf("%w: %s is not a tpm:seal URI", keyuri.ErrSyntax, u)
	}
	o := collect(opts)
	d, err := OpenDevice(o.deviceFor(u.Device))
	if err != nil {
		return nil, err
	}
	desc := "tpm:seal"
	if len(u.PCRs) > 0 {
		desc += ";pcrs=" + formatPCRs(u.PCRs)
	}
	if u.PIN {
		desc += ";pin=yes"
	}
	if u.SRK != nil {
		desc += ";srk=" + shortName(u.SRK)
	}
	desc += "?device=" + d.Path()
	k := &SealKEK{dev: d, pcrs: u.PCRs, pin: u.PIN, srk: u.SRK, pins: newPINCache(u, desc, o), desc: desc}
	if k.authority, k.signed, err = authorityOf(u); err != nil {
		return nil, err
	}
	return k, nil
}

// authorityOf reads a URI's authority= key (its name) and signed-pcrs=
// policies.
func authorityOf(u *URI) (name []byte, signed []*signedPolicy, err error) {
	if u.Authority != "" {
		pub, err := ReadAuthorityKey(u.Authority)
		if err != nil {
			return nil, nil, err
		}
		if name, err = AuthorityName(pub); err != nil {
			return nil, nil, err
		}
	}
	if u.SignedPCRs != "" {
		if signed, err = readSignedPolicies(u.SignedPCRs); err != nil {
			return nil, nil, err
		}
	}
	return name, signed, nil
}

// String names the KEK in errors (no PIN).
func (k *SealKEK) String() string { return k.desc }

// KeyIdentity returns the name of the SRK the KEK seals to, verified as
// every seal verifies it (the name hashes the public area the TPM
// returned): what a sealed data key depends on, so a cleared or replaced
// TPM gives another. ctx bounds the TPM call.
func (k *SealKEK) KeyIdentity(ctx context.Context) ([]byte, error) {
	var name []byte
	err := k.dev.run(ctx, func(c *conn) error {
		if err := checkSRKPin(k.srk, c.srk.name.Buffer, "the TPM presents the"); err != nil {
			return err
		}
		name = append([]byte(nil), c.srk.name.Buffer...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return name, nil
}

// Device returns the TPM the KEK uses.
func (k *SealKEK) Device() *Device { return k.dev }

// sealTemplate is the public area of a sealed data object with policy p.
func sealTemplate(p policy) tpm2.TPMTPublic {
	digest := p.digest()
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:     true,
			FixedParent:  true,
			UserWithAuth: p.empty(),
			NoDA:         !p.pin,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: digest},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{}),
	}
}

// Wrap seals dek under the SRK (TPM2_Create over a salted session that
// encrypts the sensitive data on its way in). With srk= it first checks that
// the TPM's SRK has that name (ErrDifferentTPM otherwise). With PCRs, it
// checks that the TPM created the object while the PCRs held the values the
// policy was computed from (ErrTampered otherwise). The encryption context
// is not bound here; the message header's authentication binds it. ctx
// bounds the TPM call and is passed to the PIN callback, if the KEK has
// pin=yes and the URI gives no PIN.
func (k *SealKEK) Wrap(ctx context.Context, dek []byte, _ envelope.EncryptionContext) (envelope.EncryptedDataKey, error) {
	if len(dek) == 0 || len(dek) > maxDEK {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: cannot seal a %d-byte data key (1..%d)", k, len(dek), maxDEK)
	}
	var auth []byte
	if k.pin {
		var err error
		if auth, err = k.pins.auth(ctx); err != nil {
			return envelope.EncryptedDataKey{}, err
		}
		defer clear(auth)
	}
	var edk envelope.EncryptedDataKey
	err := k.dev.run(ctx, func(c *conn) error {
		if err := checkSRKPin(k.srk, c.srk.name.Buffer, "the TPM presents the"); err != nil {
			return err
		}
		p := policy{authority: k.authority}
		if k.authority == nil {
			var err error
			if p, err = newPolicy(c.l, k.pcrs, k.pin); err != nil {
				return err
			}
		}
		tmpl := sealTemplate(p)
		sess := c.srk.hmacIn(nil)
		rsp, err := (tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: c.srk.handle, Name: c.srk.name, Auth: sess},
			InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
				UserAuth: tpm2.TPM2BAuth{Buffer: auth},
				Data:     tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: dek}),
			}},
			InPublic:    tpm2.New2B(tmpl),
			CreationPCR: p.creationPCR(),
		}).Execute(c.l)
		if err != nil {
			flushSessions(c.l, sess)
			return fmt.Errorf("TPM2_Create (sealed data object): %w", err)
		}
		if err := p.checkCreation(&rsp.CreationData); err != nil {
			return err
		}
		// An object that is not what was asked for would be refused when
		// unsealing: find out now, while the data key is still at hand.
		pub, err := rsp.OutPublic.Contents()
		if err != nil {
			return fmt.Errorf("%w: the sealed object's public area: %v", ErrTampered, err)
		}
		if err := checkCreated(tmpl, pub); err != nil {
			return err
		}
		o := object{srkName: c.srk.name.Buffer, pub: rsp.OutPublic, priv: rsp.OutPrivate, policy: p}
		edk = envelope.EncryptedDataKey{ProviderID: ProviderSeal, ProviderInfo: marshalSealInfo(&o), Ciphertext: o.blob()}
		return nil
	})
	if err != nil {
		return envelope.EncryptedDataKey{}, fmt.Errorf("%s: sealing the data key: %w", k, err)
	}
	return edk, nil
}

// Claims reports whether edk is a sealed data key. Whether it was sealed by
// this TPM shows in Unwrap (ErrDifferentTPM otherwise).
func (k *SealKEK) Claims(edk envelope.EncryptedDataKey) bool {
	return edk.ProviderID == ProviderSeal
}

// Unwrap unseals the data key of edk: TPM2_Load under the SRK named in the
// EDK, then TPM2_Unseal over a salted session that encrypts the data key on
// its way out (a policy session for PCR and PIN policies), then flushes the
// object. The EDK's own PCR selection and PIN flag decide the policy; the
// PIN comes from the URI or the WithPIN callback, which gets ctx. ctx also
// bounds the TPM call.
func (k *SealKEK) Unwrap(ctx context.Context, edk envelope.EncryptedDataKey, _ envelope.EncryptionContext) ([]byte, error) {
	if edk.ProviderID != ProviderSeal {
		return nil, fmt.Errorf("%w: %s: provider id %q is not %s", ErrUnwrap, k, edk.ProviderID, ProviderSeal)
	}
	o, err := parseSealEDK(edk)
	if err != nil {
		return nil, err
	}
	if err := checkSRKPin(k.srk, o.srkName, "the EDK was sealed under the"); err != nil {
		return nil, err
	}
	o.policy.signed = k.signed
	var auth []byte
	if o.policy.pin {
		if auth, err = k.pins.auth(ctx); err != nil {
			return nil, err
		}
		defer clear(auth)
	}
	var dek []byte
	what := "the object sealed to " + o.policy.describe()
	err = k.dev.run(ctx, func(c *conn) error {
		return c.use(o, what, auth, k.pins, ErrUnwrap, func(h tpm2.AuthHandle) error {
			rsp, err := (tpm2.Unseal{ItemHandle: h}).Execute(c.l)
			if err != nil {
				return err
			}
			dek = append([]byte(nil), rsp.OutData.Buffer...)
			clear(rsp.OutData.Buffer)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return dek, nil
}

// marshalSealInfo builds the provider info of a sealed EDK.
func marshalSealInfo(o *object) []byte {
	var flags byte
	if o.policy.pin {
		flags |= flagPIN
	}
	return marshalParentPolicy(flags, o.srkName, o.policy)
}

// marshalParentPolicy builds the provider info that sealed and EK-sealed
// EDKs share: version u8 = 1 | flags u8 | u16 length + the parent's name |
// PCR count u8 | per PCR: index u8, SHA-256 value (32).
func marshalParentPolicy(flags byte, parent []byte, p policy) []byte {
	b := []byte{sealInfoV1, flags}
	b = binary.BigEndian.AppendUint16(b, uint16(len(parent)))
	b = append(b, parent...)
	b = append(b, byte(len(p.pcrs)))
	for i, pcr := range p.pcrs {
		b = append(b, byte(pcr))
		b = append(b, p.values[i]...)
	}
	if p.authority != nil {
		b[1] |= flagAuthorized
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.authority)))
		b = append(b, p.authority...)
	}
	return b
}

// parseParentPolicy reads what marshalParentPolicy wrote; flags outside
// known are an error. provider names the layout in errors.
func parseParentPolicy(b []byte, known byte, provider string) (flags byte, parent []byte, p policy, err error) {
	bad := func(why string) (byte, []byte, policy, error) {
		return 0, nil, policy{}, fmt.Errorf("%w: malformed %s provider info: %s", ErrUnwrap, provider, why)
	}
	if len(b) < 4 {
		return bad("truncated")
	}
	if b[0] != sealInfoV1 {
		return bad(fmt.Sprintf("version %d (this hsmenv reads version %d)", b[0], sealInfoV1))
	}
	if b[1]&^(known|flagAuthorized) != 0 {
		return bad(fmt.Sprintf("unknown flags %#x", b[1]))
	}
	flags = b[1]
	n := int(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	if n == 0 || len(b) < n+1 {
		return bad("parent name")
	}
	parent, b = b[:n], b[n:]
	count := int(b[0])
	b = b[1:]
	if count > maxPCR+1 || len(b) < count*33 {
		return bad(fmt.Sprintf("%d PCRs in %d bytes", count, len(b)))
	}
	rest := b[count*33:]
	b = b[:count*33]
	if flags&flagAuthorized != 0 {
		if count > 0 || flags&flagPIN != 0 || len(rest) < 2 {
			return bad("a signed-policy EDK with PCRs or a PIN, or no authority")
		}
		n := int(binary.BigEndian.Uint16(rest))
		if n == 0 || len(rest) != 2+n {
			return bad("authority name")
		}
		p.authority = rest[2:]
	} else if len(rest) != 0 {
		return bad(fmt.Sprintf("%d bytes after the PCRs", len(rest)))
	}
	for i := 0; i < count; i++ {
		idx := int(b[0])
		if idx > maxPCR || (i > 0 && idx <= p.pcrs[i-1]) {
			return bad("PCR indexes out of range or order")
		}
		p.pcrs = append(p.pcrs, idx)
		p.values = append(p.values, b[1:33])
		b = b[33:]
	}
	return flags, parent, p, nil
}

// parseSealEDK reads a sealed EDK and checks that its object fits its
// provider info.
func parseSealEDK(edk envelope.EncryptedDataKey) (*object, error) {
	flags, parent, p, err := parseParentPolicy(edk.ProviderInfo, flagPIN, ProviderSeal)
	if err != nil {
		return nil, err
	}
	p.pin = flags&flagPIN != 0
	o := &object{srkName: parent, policy: p}
	if _, err := o.parseBlob(edk.Ciphertext, ErrUnwrap); err != nil {
		return nil, err
	}
	h := o.head
	// A sealed data object: keyed-hash, scheme TPM_ALG_NULL, then its
	// unique digest and nothing after it.
	sealed := h.typ == tpm2.TPMAlgKeyedHash && !h.has(attrSensitiveDataOrigin) && !h.has(attrDecrypt) && !h.has(attrSign) &&
		len(h.rest) >= 4 && tpm2.TPMAlgID(binary.BigEndian.Uint16(h.rest)) == tpm2.TPMAlgNull &&
		int(binary.BigEndian.Uint16(h.rest[2:])) == len(h.rest)-4
	if !sealed {
		return nil, fmt.Errorf("%w: the %s EDK holds no sealed data object", ErrUnwrap, ProviderSeal)
	}
	if err := checkPublic(h, o.policy, ErrUnwrap); err != nil {
		return nil, err
	}
	return o, nil
}
