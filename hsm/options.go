package hsm

import "context"

// Option changes how OpenURI, Open, Generate, List and PublicKeyPEM reach a
// token: where the PIN comes from when the URI has none (WithPIN) and which
// module is used when the URI has no module-path (WithModule). This package
// reads no environment variable and prompts on no terminal: callers pass
// what they want to allow. Of two options of the same kind, the later wins;
// the zero Option does nothing.
type Option struct{ set func(*options) }

type options struct {
	pin    func(ctx context.Context, what string) (string, error)
	module string
}

func applyOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt.set != nil {
			opt.set(&o)
		}
	}
	return o
}

// WithPIN gives the function that supplies the user PIN when the URI has
// neither pin-value nor pin-source and the token needs a login. what names
// the token, e.g. `token "demo" (SoftHSM v2)`, for a prompt. The function
// gets the ctx of the operation that logs in; it may prompt, and must
// return once ctx is done. Operations on the same token wait while it runs,
// so it must not use that token itself. It is called for every login: the
// first one, and again after the token forgot the login.
//
// Its errors are returned wrapped in ErrPIN, the cause still visible to
// errors.Is. An empty PIN is refused (ErrPIN and internal/pin.ErrEmpty)
// and never sent; a PIN the token rejected once is refused without being
// sent again, so a function that keeps returning the same wrong PIN cannot
// lock the token, while a different PIN (typed again at a prompt) is tried.
func WithPIN(f func(ctx context.Context, what string) (string, error)) Option {
	return Option{func(o *options) { o.pin = f }}
}

// WithModule gives the PKCS#11 module used when the URI has no module-path;
// a URI's module-path always wins. Without either, opening fails with
// ErrNoModule.
func WithModule(path string) Option {
	return Option{func(o *options) { o.module = path }}
}
