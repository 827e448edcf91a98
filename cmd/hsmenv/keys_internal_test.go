package main

import "testing"

// TestDefaultKeyType: keygen's default type followed a case-sensitive
// "tpm:" prefix, so TPM:seal (schemes are case-insensitive) defaulted to
// aes-256.
func TestDefaultKeyType(t *testing.T) {
	for uri, want := range map[string]string{
		"tpm:seal?device=tcp://127.0.0.1:1":             "seal",
		"TPM:seal;pcrs=sha256:7":                        "seal",
		"Tpm:key-file=/k.tpmkey":                        "rsa-2048",
		"tpm:key-file=/k.tpmkey;x-name=seal":            "rsa-2048",
		"pkcs11:token=t;object=o?module-path=/m.so":     "aes-256",
		"PKCS11:token=t;object=tpm:seal?module-path=/m": "aes-256",
	} {
		if got := defaultKeyType(uri); got != want {
			t.Errorf("defaultKeyType(%q) = %s, want %s", uri, got, want)
		}
	}
}
