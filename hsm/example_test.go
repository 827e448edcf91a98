package hsm_test

import (
	"context"
	"fmt"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/hsm"
)

// Open a key whose URI has neither module-path nor a PIN, with both from
// the caller, and wrap and unwrap a data key in the token. (Compiled, not
// run: it needs a token.)
func ExampleOpen() {
	ctx := context.Background()
	askPIN := func(ctx context.Context, what string) (string, error) {
		// Prompt showing what (e.g. `token "demo" (SoftHSM v2)`), or ask a
		// vault; return promptly once ctx is done.
		return "", ctx.Err()
	}
	kek, err := hsm.OpenURI(ctx, "pkcs11:token=demo;object=kek",
		hsm.WithModule("/usr/lib/softhsm/libsofthsm2.so"), hsm.WithPIN(askPIN))
	if err != nil {
		fmt.Println(err) // errors.Is(err, hsm.ErrPIN), hsm.ErrNoModule, ...
		return
	}
	dek := make([]byte, 32)
	ec := envelope.EncryptionContext{"purpose": "example"}
	edk, err := kek.Wrap(ctx, dek, ec)
	if err != nil {
		fmt.Println(err)
		return
	}
	back, err := kek.Unwrap(ctx, edk, ec)
	fmt.Println(len(back), err)
}
