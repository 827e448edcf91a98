package rawecdh

import "fmt"

// WrapInfo says how the KEK wraps data keys, for diagnostics (hsmenv
// check): ECDH on its curve on the host with its schema, EDKs in the ESDK
// raw ECDH layout; the ephemeral schema holds no private key and does not
// unwrap (encrypt-only).
func (k *KEK) WrapInfo() (mechanism, layout string, unwraps bool) {
	curve := "(unusable key)"
	if k.cv != nil {
		curve = fmt.Sprint(k.cv.ecdh) // P-256
	}
	return "ECDH " + curve + " on the host, " + k.schema + " schema", "ESDK raw ECDH", k.err == nil && k.schema != schemaEphemeral
}
