// Package envelope implements envelope encryption in the AWS Encryption SDK
// message format v2, byte for byte.
//
// Every message gets a fresh 256-bit data key (DEK) from crypto/rand. One or
// more key-encryption keys (KEKs) wrap it into encrypted data keys (EDKs) that
// are stored in the message header; any one KEK can open the message. The
// body is sealed with AES-256-GCM under a key derived from the DEK with
// HKDF-SHA512 and committed to by the header (suites 0x0478 and 0x0578).
//
// The package knows nothing about where a KEK lives: a KEK is anything that
// implements the small KEK interface (software keys in the rawaes and rawrsa
// packages, PKCS#11 tokens in hsm, TPMs in tpm).
//
// Encryption streams through an io.WriteCloser (NewEncrypter), decryption
// through an io.Reader (NewDecrypter); both process frames in parallel on all
// cores, keep their output in order and use constant memory whatever the
// message size. OpenRange decrypts any byte range of a message held in an
// io.ReaderAt by reading only the header and the frames the range covers.
//
// Decryption never releases plaintext that has not been authenticated: each
// frame is released only after its GCM tag verified, and for signed suites the
// final frame only after the footer signature verified.
package envelope
