package envelope

import (
	"bytes"
	"context"
	"io"
)

// Encrypt returns plaintext encrypted as one message.
func Encrypt(ctx context.Context, plaintext []byte, kr Keyring, opts EncryptOptions) ([]byte, error) {
	if opts.PlaintextSize <= 0 {
		opts.PlaintextSize = int64(len(plaintext))
	}
	var out bytes.Buffer
	out.Grow(len(plaintext) + len(plaintext)/128 + 1024)
	e, err := NewEncrypter(ctx, &out, kr, opts)
	if err != nil {
		return nil, err
	}
	if _, err := e.Write(plaintext); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Decrypt returns the plaintext of message and its authenticated header. On
// any error it returns no plaintext at all.
func Decrypt(ctx context.Context, message []byte, kr Keyring, opts DecryptOptions) ([]byte, *Header, error) {
	d, err := NewDecrypter(ctx, bytes.NewReader(message), kr, opts)
	if err != nil {
		return nil, nil, err
	}
	defer d.Close()
	plaintext, err := io.ReadAll(d)
	if err != nil {
		clear(plaintext)
		return nil, nil, err
	}
	return plaintext, d.Header(), nil
}
