// Package tpm holds key-encryption keys (KEKs) in a TPM 2.0: data keys sealed
// to the TPM's storage root key (SRK), and asymmetric TPM keys (RSA-2048,
// ECC P-256) saved in key files, whose public half wraps on any machine
// without the TPM. Key-file EDKs are in the layouts of the AWS Encryption
// SDK's raw RSA and raw ECDH keyrings, so any ESDK producer holding the
// public key (PublicKeyPEM) encrypts to the TPM.
//
// Key URIs (see docs/tpm.md):
//
//	tpm:seal[;pcrs=sha256:0,7][;pin=yes][;srk=HEX]?device=DEV[&pin-source=file:PATH|&pin-value=PIN]
//	tpm:key-file=PATH[;pcrs=sha256:0,7][;pin=yes][;srk=HEX][;x-namespace=NS][;x-name=NAME]?device=DEV&...
//
// srk= pins the name of the TPM's storage root key (`hsmenv keygen --key
// tpm:seal` prints it); without it the SRK is trusted on first use.
// DEV is a device file (/dev/tpmrm0), a swtpm data port (tcp://HOST:PORT)
// or a unix socket (unix:///PATH), whose transports speak raw TPM 2.0
// commands as swtpm's data port does, or a TCTI string as tpm2-tools writes
// it: swtpm:host=H,port=P (tcp://H:P), swtpm:path=SOCKET, device:PATH, and
// mssim:host=H,port=P, the Microsoft TPM simulator protocol (see
// OpenDevice).
//
// The package never reads the environment or a terminal. What a URI does not
// say comes from the caller's Options: WithDevice names the TPM of URIs
// without device= (else DefaultDevice), and WithPIN gives a callback for
// the PIN of a key whose URI has neither pin-value nor pin-source (without
// one, such a key fails with ErrPIN). A PIN the TPM rejected is never sent
// again by the same KEK: each wrong PIN counts towards dictionary-attack
// lockout.
//
// One connection is opened per device and process, and every call on it is
// serialized; the SRK is created (or the persistent one at 0x81000001 used)
// once per connection. Every other object and session is flushed before a
// call returns. Secrets cross the bus only inside salted, parameter-encrypted
// sessions, salted to an SRK public key that is checked against the SRK's
// name (which EDKs and key files record) before any session uses it.
// Errors wrap one of the sentinel errors of this package, so callers tell a missing TPM, another TPM, changed PCRs, a wrong PIN and a
// dictionary-attack lockout apart with errors.Is.
package tpm
