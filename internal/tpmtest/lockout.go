package tpmtest

import (
	"errors"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// LockoutCounter reads TPM_PT_LOCKOUT_COUNTER, the TPM's count of failed
// authorizations towards dictionary-attack lockout, over tp (a connection
// from SWTPM.Open, or the one package tpm's tests reach through their test
// hook Device.Do).
func LockoutCounter(tp transport.TPM) (uint32, error) {
	rsp, err := (tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 1}).Execute(tp)
	if err != nil {
		return 0, err
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return 0, err
	}
	for _, p := range props.TPMProperty {
		if p.Property == tpm2.TPMPTLockoutCounter {
			return p.Value, nil
		}
	}
	return 0, errors.New("the TPM reported no TPM_PT_LOCKOUT_COUNTER")
}
