package ageplugin

import (
	"context"

	"filippo.io/age"

	"github.com/hsmenv/hsmenv/resolver"
)

// NewRecipient returns the age recipient of an age1hsmenv1 recipient's
// key: for a P-256 key, age's tagged P-256 recipient (no device); else the
// KEK of its URI, opened on the first Wrap. ctx bounds every device call
// and goes to o.PIN when a PIN is needed.
func NewRecipient(ctx context.Context, k Key, o resolver.Options) (age.Recipient, error) {
	if k.P256 != nil {
		return tagRecipient(k.P256)
	}
	if err := CheckURI(k.URI); err != nil {
		return nil, err
	}
	return &uriRecipient{kek: &lazyKEK{ctx: ctx, uri: k.URI, opts: o}}, nil
}
