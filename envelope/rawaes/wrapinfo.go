package rawaes

// WrapInfo says how the KEK wraps data keys, for diagnostics (hsmenv
// check): AES-GCM on the host, EDKs in the ESDK raw AES layout, which it
// unwraps.
func (k *KEK) WrapInfo() (mechanism, layout string, unwraps bool) {
	return "AES-GCM on the host", "ESDK raw AES", true
}
