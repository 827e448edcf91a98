package rawrsa

// Mechanism names the padding as an algorithm: "RSA-OAEP-SHA256",
// "RSA-PKCS1-v1_5".
func (p Padding) Mechanism() string {
	switch p {
	case PKCS1:
		return "RSA-PKCS1-v1_5"
	case OAEPSHA1:
		return "RSA-OAEP-SHA1"
	case OAEPSHA256:
		return "RSA-OAEP-SHA256"
	case OAEPSHA384:
		return "RSA-OAEP-SHA384"
	case OAEPSHA512:
		return "RSA-OAEP-SHA512"
	}
	return p.String()
}

// WrapInfo says how the KEK wraps data keys, for diagnostics (hsmenv
// check): its padding on the host, EDKs in the ESDK raw RSA layout; it
// unwraps only with a private key (without one it is encrypt-only).
func (k *KEK) WrapInfo() (mechanism, layout string, unwraps bool) {
	return k.padding.Mechanism() + " on the host", "ESDK raw RSA", k.priv != nil
}
