package rawecdh_test

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// FuzzOpen feeds provider info, an EDK ciphertext and a context value to
// ParseInfo, Open and a discovery KEK's Claims and Unwrap. ParseInfo must
// accept only the canonical layout (what it parsed serializes back to the
// same bytes) and refuse the rest with ErrMalformed; Open and Unwrap must
// fail with a sentinel and no key, or return the one data key every seed
// wraps (anything else would be a forgery); nothing may panic. The
// recipient keys are the MPL test keys, so the seeds (knownEDK here; P-384
// and P-521 EDKs to mplKeys[1] and [2] in testdata/fuzz/FuzzOpen) open.
func FuzzOpen(f *testing.F) {
	recipients := map[ecdh.Curve]*ecdh.PrivateKey{
		ecdh.P256(): parsePriv(f, katRecipientPEM),
		ecdh.P384(): parsePriv(f, mplKeys[1].private),
		ecdh.P521(): parsePriv(f, mplKeys[2].private),
	}
	f.Add(knownEDK.ProviderInfo, knownEDK.Ciphertext, "kat")
	f.Add(knownEDK.ProviderInfo, knownEDK.Ciphertext[:96], "kat")
	f.Add(knownEDK.ProviderInfo[:74], knownEDK.Ciphertext, "")
	f.Add(append([]byte{1, 0xff, 0xff, 0xff, 0xff}, knownEDK.ProviderInfo[5:]...), knownEDK.Ciphertext, "kat")
	f.Fuzz(func(t *testing.T, info, ct []byte, value string) {
		var ec envelope.EncryptionContext
		if value != "" {
			ec = envelope.EncryptionContext{"purpose": value}
		}
		edk := envelope.EncryptedDataKey{ProviderID: rawecdh.ProviderID, ProviderInfo: info, Ciphertext: ct}
		inf, err := rawecdh.ParseInfo(info)
		if err != nil {
			if !errors.Is(err, rawecdh.ErrMalformed) || inf != nil {
				t.Fatalf("ParseInfo: %v, %v", inf, err)
			}
			if key, err := rawecdh.NewDiscovery(recipients[ecdh.P256()]).Unwrap(ctx, edk, ec); err == nil || key != nil {
				t.Fatalf("Unwrap of malformed info returned %x, %v", key, err)
			}
			return
		}
		if !bytes.Equal(serializeInfo(inf), info) {
			t.Fatalf("ParseInfo accepted a non-canonical info %x", info)
		}
		priv := recipients[inf.Curve]
		z, err := priv.ECDH(inf.Sender)
		if err != nil {
			t.Fatalf("ECDH with a parsed sender key: %v", err)
		}
		key, err := rawecdh.Open(z, inf, edk, ec)
		check(t, "Open", key, err)
		kek := rawecdh.NewDiscovery(priv)
		if !kek.Claims(edk) {
			return
		}
		key2, err2 := kek.Unwrap(ctx, edk, ec)
		check(t, "Unwrap", key2, err2)
		if !bytes.Equal(key, key2) || (err == nil) != (err2 == nil) {
			t.Fatalf("Open and Unwrap disagree: %x, %v; %x, %v", key, err, key2, err2)
		}
	})
}

// check fails unless err wraps a sentinel with no key, or key is the data
// key of the seeds.
func check(t *testing.T, what string, key []byte, err error) {
	t.Helper()
	switch {
	case err == nil && !bytes.Equal(key, knownDEK()):
		t.Fatalf("%s returned a key no seed wraps: %x", what, key)
	case err != nil && key != nil:
		t.Fatalf("%s returned a key with an error: %v", what, err)
	case err != nil && !errors.Is(err, rawecdh.ErrMalformed) && !errors.Is(err, rawecdh.ErrCommitment) && !errors.Is(err, envelope.ErrContext):
		t.Fatalf("%s: %v wraps no sentinel", what, err)
	}
}

// serializeInfo writes provider info the way the ESDK does, from parsed
// keys.
func serializeInfo(inf *rawecdh.Info) []byte {
	r, s := rawecdh.Compressed(inf.Recipient), rawecdh.Compressed(inf.Sender)
	b := binary.BigEndian.AppendUint32([]byte{1}, uint32(len(r)))
	b = append(b, r...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
