package tpm

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// TestPolicyDigest checks the hand-written policy digest against go-tpm's
// PolicyCalculator for every combination.
func TestPolicyDigest(t *testing.T) {
	v := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	for _, p := range []policy{
		{pin: true},
		{pcrs: []int{7}, values: [][]byte{v(1)}},
		{pcrs: []int{0, 7, 16, 23}, values: [][]byte{v(1), v(2), v(3), v(4)}, pin: true},
	} {
		calc, _ := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
		if len(p.pcrs) > 0 {
			h := sha256.New()
			for _, x := range p.values {
				h.Write(x)
			}
			(tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)}, Pcrs: selection(p.pcrs)}).Update(calc)
		}
		if p.pin {
			(tpm2.PolicyAuthValue{}).Update(calc)
		}
		if got, want := p.digest(), calc.Hash().Digest; !bytes.Equal(got, want) {
			t.Errorf("%s: digest %x, PolicyCalculator %x", p.describe(), got, want)
		}
	}
	if (policy{}).digest() != nil {
		t.Error("the empty policy has a digest")
	}
}

// TestParseHead checks the hand-written public-area reader against go-tpm.
func TestParseHead(t *testing.T) {
	p := policy{pcrs: []int{16}, values: [][]byte{make([]byte, 32)}, pin: true}
	for _, tmpl := range []tpm2.TPMTPublic{sealTemplate(p), rsaTemplate(p), eccTemplate(policy{})} {
		b := tpm2.Marshal(tmpl)
		h, err := parseHead(b)
		if err != nil {
			t.Fatal(err)
		}
		a := tpm2.Marshal(tmpl.ObjectAttributes)
		if h.typ != tmpl.Type || h.nameAlg != tmpl.NameAlg || !bytes.Equal(h.authPolicy, tmpl.AuthPolicy.Buffer) ||
			h.attrs != uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3]) {
			t.Fatalf("head %+v of %x", h, b)
		}
		if h.has(attrNoDA) != tmpl.ObjectAttributes.NoDA || h.has(attrUserWithAuth) != tmpl.ObjectAttributes.UserWithAuth ||
			h.has(attrDecrypt) != tmpl.ObjectAttributes.Decrypt || !h.has(attrFixedTPM|attrFixedParent) {
			t.Fatalf("attribute bits %#x", h.attrs)
		}
		if err := checkPublic(h, policyFor(tmpl, p), ErrUnwrap); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(b); n++ {
			parseHead(b[:n]) // must not panic
		}
	}
}

func policyFor(tmpl tpm2.TPMTPublic, p policy) policy {
	if len(tmpl.AuthPolicy.Buffer) == 0 {
		return policy{}
	}
	return p
}
