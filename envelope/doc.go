// Package envelope implements envelope encryption in the AWS Encryption SDK
// message format v2, byte for byte.
//
// Every message gets a fresh 256-bit data key (DEK) from crypto/rand. One or
// more key-encryption keys (KEKs) wrap it into encrypted data keys (EDKs) that
// are stored in the message header; any one KEK can open the message. The
// body is sealed with AES-256-GCM under a key derived from the DEK with
// HKDF-SHA512 and committed to by the header (suites 0x0478 and 0x0578).
//
// KEK is the one interface to implement: software keys are in the rawaes
// and rawrsa packages, PKCS#11 tokens in hsm, TPMs in tpm, and the resolver
// package opens any of them from a key URI. A Keyring is the set of KEKs a
// message is encrypted to and opened with:
//
//	kr := envelope.NewKeyring(kek)   // or NewKeyring(kek1, kek2, ...)
//	enc, err := envelope.NewEncrypter(ctx, out, kr, envelope.EncryptOptions{Context: ec})
//
// NewCachingKeyring makes a keyring that reuses data keys within limits, as
// the ESDK's caching materials manager does, so that many small messages
// cost one device call.
//
// Encryption streams through an io.WriteCloser (NewEncrypter), decryption
// through an io.Reader (NewDecrypter); both process frames in parallel on all
// cores, keep their output in order and use constant memory whatever the
// message size. Encrypt and Decrypt handle messages held in memory.
// OpenRange decrypts any byte range of a message held in an io.ReaderAt by
// reading only the header and the frames the range covers; DecryptAt
// decrypts a whole file on all cores. Rewrap changes the KEKs of a message
// without touching its body.
//
// Every entry point takes a context: it bounds the KEK calls and the
// processing, which stops within one batch of frames once the context is
// done.
//
// Decryption never releases plaintext that has not been authenticated: each
// frame is released only after its GCM tag verified, and for signed suites the
// final frame only after the footer signature verified.
//
// The message format (header, EDK entries, frames, footer) is written and
// parsed in one place, format.go, and the encryption context in context.go;
// docs/format.md describes it.
package envelope
