package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/hsmenv/hsmenv/internal/keyuri"
)

// maxPCR is the highest PCR index accepted (PC Client TPMs have 24).
const maxPCR = 23

// policy is what an object's authPolicy binds it to: SHA-256 PCR values
// and/or knowledge of a PIN. The zero policy means neither (the object is
// used with its empty auth value).
type policy struct {
	pcrs   []int    // ascending, SHA-256 bank
	values [][]byte // the PCR values at seal time, in the order of pcrs
	pin    bool
	// authority is the name of the key whose signed PCR sets the object
	// opens under (TPM2_PolicyAuthorize); it excludes pcrs and pin. signed
	// are the signed sets given to open it (unwrap only).
	authority []byte
	signed    []*signedPolicy
	auth      *authorization // the signed set prepare chose, for one unseal
}

// empty reports whether p binds nothing.
func (p policy) empty() bool { return len(p.pcrs) == 0 && !p.pin && p.authority == nil }

// ParsePCRs parses a URI's pcrs= value: "sha256:0,7" or "0,7" (only the
// SHA-256 bank is supported). It returns the indexes in ascending order.
func ParsePCRs(s string) ([]int, error) {
	bank, list, ok := strings.Cut(s, ":")
	if !ok {
		bank, list = "sha256", s
	}
	if !strings.EqualFold(bank, "sha256") {
		return nil, fmt.Errorf("%w: pcrs=%q: only the sha256 bank is supported", keyuri.ErrSyntax, s)
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > maxPCR {
			return nil, fmt.Errorf("%w: pcrs=%q: %q is not a PCR index 0..%d", keyuri.ErrSyntax, s, f, maxPCR)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%w: pcrs=%q: PCR %d twice", keyuri.ErrSyntax, s, n)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// formatPCRs is the inverse of ParsePCRs.
func formatPCRs(pcrs []int) string {
	s := make([]string, len(pcrs))
	for i, p := range pcrs {
		s[i] = strconv.Itoa(p)
	}
	return "sha256:" + strings.Join(s, ",")
}

// selection returns the TPML_PCR_SELECTION of the SHA-256 PCRs.
func selection(pcrs []int) tpm2.TPMLPCRSelection {
	idx := make([]uint, len(pcrs))
	for i, p := range pcrs {
		idx[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(idx...),
	}}}
}

// digest computes the authPolicy of p, as TPM2_PolicyPCR (with the sealed
// values) then TPM2_PolicyAuthValue leave it (TPM 2.0 Part 3, 23.7 and
// 23.17); nil for the empty policy.
func (p policy) digest() []byte {
	if p.empty() {
		return nil
	}
	state := make([]byte, sha256.Size)
	if p.authority != nil {
		// TPM2_PolicyAuthorize's PolicyUpdate: H(0 || CC || keySign name),
		// then H(that || policyRef), policyRef empty (Part 3, 23.16).
		h := sha256.New()
		h.Write(state)
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMCCPolicyAuthorize)))
		h.Write(p.authority)
		state = h.Sum(nil)
		h = sha256.New()
		h.Write(state)
		return h.Sum(nil)
	}
	if len(p.pcrs) > 0 {
		pcrs := sha256.New()
		for _, v := range p.values {
			pcrs.Write(v)
		}
		h := sha256.New()
		h.Write(state)
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMCCPolicyPCR)))
		h.Write(selectionBytes(p.pcrs))
		h.Write(pcrs.Sum(nil))
		state = h.Sum(nil)
	}
	if p.pin {
		h := sha256.New()
		h.Write(state)
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMCCPolicyAuthValue)))
		state = h.Sum(nil)
	}
	return state
}

// selectionBytes marshals selection(pcrs): count u32 = 1, hash u16,
// sizeofSelect u8, the bitmap.
func selectionBytes(pcrs []int) []byte {
	sel := selection(pcrs).PCRSelections[0]
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(sel.Hash))
	b = append(b, byte(len(sel.PCRSelect)))
	return append(b, sel.PCRSelect...)
}

// callback returns the policy commands that satisfy p in a policy session.
// PolicyPCR is given no digest: the TPM takes the PCRs' current values, and
// the object's authPolicy decides.
func (p policy) callback() tpm2.PolicyCallback {
	return func(t transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		if p.authority != nil {
			return p.authorize(t, h)
		}
		if len(p.pcrs) > 0 {
			if _, err := (tpm2.PolicyPCR{PolicySession: h, Pcrs: selection(p.pcrs)}).Execute(t); err != nil {
				return fmt.Errorf("TPM2_PolicyPCR: %w", err)
			}
		}
		if p.pin {
			if _, err := (tpm2.PolicyAuthValue{PolicySession: h}).Execute(t); err != nil {
				return fmt.Errorf("TPM2_PolicyAuthValue: %w", err)
			}
		}
		return nil
	}
}

// describe says what p binds, for messages: "PCRs sha256:0,7 and a PIN".
func (p policy) describe() string {
	var parts []string
	if p.authority != nil {
		parts = append(parts, "PCR values signed by the authority "+shortName(p.authority))
	}
	if len(p.pcrs) > 0 {
		parts = append(parts, "PCRs "+formatPCRs(p.pcrs))
	}
	if p.pin {
		parts = append(parts, "a PIN")
	}
	if len(parts) == 0 {
		return "no policy"
	}
	return strings.Join(parts, " and ")
}

// readPCRs reads the SHA-256 values of pcrs, in order. TPM2_PCR_Read returns
// at most 8 values per call; it is called until all are read.
func readPCRs(t transport.TPM, pcrs []int) ([][]byte, error) {
	got := map[int][]byte{}
	for len(got) < len(pcrs) {
		var want []int
		for _, p := range pcrs {
			if _, ok := got[p]; !ok {
				want = append(want, p)
			}
		}
		rsp, err := (tpm2.PCRRead{PCRSelectionIn: selection(want)}).Execute(t)
		if err != nil {
			return nil, fmt.Errorf("TPM2_PCR_Read: %w", err)
		}
		var read []int
		for _, sel := range rsp.PCRSelectionOut.PCRSelections {
			if sel.Hash != tpm2.TPMAlgSHA256 {
				continue
			}
			for i, b := range sel.PCRSelect {
				for bit := 0; bit < 8; bit++ {
					if b&(1<<bit) != 0 {
						read = append(read, i*8+bit)
					}
				}
			}
		}
		if len(read) == 0 || len(read) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("TPM2_PCR_Read: the TPM returned %d values for %d PCRs (is the SHA-256 bank allocated?)", len(rsp.PCRValues.Digests), len(read))
		}
		for i, p := range read {
			got[p] = rsp.PCRValues.Digests[i].Buffer
		}
	}
	out := make([][]byte, len(pcrs))
	for i, p := range pcrs {
		out[i] = got[p]
	}
	return out, nil
}

// newPolicy reads the current values of pcrs for a new object's policy.
func newPolicy(t transport.TPM, pcrs []int, pin bool) (policy, error) {
	p := policy{pcrs: pcrs, pin: pin}
	if len(pcrs) > 0 {
		v, err := readPCRs(t, pcrs)
		if err != nil {
			return policy{}, err
		}
		p.values = v
	}
	return p, nil
}

// creationPCR is the CreationPCR of a new object with policy p: the PCRs
// its policy binds, so that the TPM reports their digest at creation.
func (p policy) creationPCR() tpm2.TPMLPCRSelection {
	if len(p.pcrs) == 0 {
		return tpm2.TPMLPCRSelection{}
	}
	return selection(p.pcrs)
}

// checkCreation checks that the TPM created an object with policy p while
// the PCRs held the values p was computed from: the creation data's
// pcrDigest (SHA-256 over the selected PCRs, in index order) must be the
// digest of p.values. TPM2_PCR_Read is unauthenticated, so something on the
// TPM link could otherwise bind new objects to PCR values of its choice; the
// creation data comes in the Create response, which the session's HMAC
// authenticates.
func (p policy) checkCreation(cd *tpm2.TPM2B[tpm2.TPMSCreationData, *tpm2.TPMSCreationData]) error {
	if len(p.pcrs) == 0 {
		return nil
	}
	data, err := cd.Contents()
	if err != nil {
		return fmt.Errorf("%w: the creation data of the new object: %v", ErrTampered, err)
	}
	h := sha256.New()
	for _, v := range p.values {
		h.Write(v)
	}
	if !bytes.Equal(data.PCRDigest.Buffer, h.Sum(nil)) || !bytes.Equal(tpm2.Marshal(data.PCRSelect), tpm2.Marshal(selection(p.pcrs))) {
		return fmt.Errorf("%w: the TPM created the object under other values of %s than TPM2_PCR_Read returned: something between hsmenv and the TPM altered them (or a PCR was extended in between: try again); the object is not used",
			ErrTampered, formatPCRs(p.pcrs))
	}
	return nil
}

// pcrError builds the ErrPCR error for a failed policy: it reads the PCRs
// again and names each one whose value differs from the sealed one.
func (p policy) pcrError(t transport.TPM, cause error) error {
	now, err := readPCRs(t, p.pcrs)
	if err != nil {
		return fmt.Errorf("%w: the policy over %s failed (%v), and the PCRs could not be read to say which: %v", ErrPCR, formatPCRs(p.pcrs), cause, err)
	}
	var diff []int
	var detail string // the values of the one PCR that changed
	for i, pcr := range p.pcrs {
		if !bytes.Equal(now[i], p.values[i]) {
			diff = append(diff, pcr)
			detail = fmt.Sprintf("PCR %d (%x... then, %x... now)", pcr, p.values[i][:4], now[i][:min(4, len(now[i]))])
		}
	}
	if len(diff) > 1 {
		detail = "PCRs " + formatPCRs(diff)
	}
	if len(diff) == 0 {
		return fmt.Errorf("%w: the policy over %s failed although the PCRs now hold their sealed values (they changed during the call?): %v", ErrPCR, formatPCRs(p.pcrs), cause)
	}
	return fmt.Errorf("%w: %s changed since sealing; seal again", ErrPCR, detail)
}

// PCRValues reads the current SHA-256 values of pcrs, in the given order.
// ctx bounds the TPM call.
func (d *Device) PCRValues(ctx context.Context, pcrs []int) ([][]byte, error) {
	var out [][]byte
	err := d.run(ctx, func(c *conn) error {
		v, err := readPCRs(c.l, pcrs)
		out = v
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	return out, nil
}
