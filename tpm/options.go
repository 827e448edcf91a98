package tpm

import "context"

// Option gives OpenURI, OpenSeal, OpenKeyFile, Generate, PublicKeyPEM and
// OpenDevice what the caller, not the URI, decides: how to ask for a PIN and
// which TPM to use when the URI names none. The package itself never reads
// the environment or a terminal. Make Options with WithPIN and WithDevice;
// the zero Option does nothing. When an option is given twice, the last one
// counts.
type Option struct {
	apply func(*options)
}

// options is what the Options of one call set.
type options struct {
	pin    func(ctx context.Context, what string) (string, error)
	device string
}

// WithPIN asks f for the PIN of a key whose URI has neither pin-value nor
// pin-source, when the key needs one. what names the key (for instance
// "tpm:seal;pin=yes?device=/dev/tpmrm0"); ctx is that of the call that
// needs the PIN (Wrap, Unwrap, Generate). f may prompt; it must return when
// ctx is done, with ctx's error or its own. A KEK keeps the answer and asks
// f again only after the TPM rejected it (or f failed); an answer the TPM
// already rejected is refused without being sent again (dictionary-attack
// lockout). Concurrent calls on one KEK wait for a single call of f, each
// within its own ctx. An error from f is returned wrapped in ErrPIN and stays
// visible to errors.Is; an empty answer fails with ErrPIN and is never sent.
// Without WithPIN (or with a nil f) such a key fails with ErrPIN.
func WithPIN(f func(ctx context.Context, what string) (string, error)) Option {
	return Option{func(o *options) { o.pin = f }}
}

// WithDevice names the TPM used when the URI has no device= (or, for
// OpenDevice, when dev is empty): a device path, tcp://HOST:PORT,
// unix:///PATH or a TCTI string (swtpm:host=H,port=P, mssim:host=H,port=P,
// device:PATH; see OpenDevice). Empty means DefaultDevice.
func WithDevice(dev string) Option {
	return Option{func(o *options) { o.device = dev }}
}

// collect applies opts in order.
func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt.apply != nil {
			opt.apply(&o)
		}
	}
	return o
}

// deviceFor returns the device a URI with device=dev means: dev, else the
// WithDevice default ("" still means DefaultDevice).
func (o options) deviceFor(dev string) string {
	if dev == "" {
		return o.device
	}
	return dev
}
