package tpm

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/internal/keyuri/pintest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// Fuzz targets for every parser of untrusted or user bytes: key files, the
// provider info and ciphertext of sealed, raw ECDH, legacy ECDH and RSA
// EDKs, and tpm: URIs.
// Their seed corpora under testdata/fuzz/ hold real key files and EDKs made
// against swtpm (TestWriteFuzzSeeds, run with HSMENV_WRITE_FUZZ_SEEDS=1,
// writes them). Run one with
//
//	go test -run XXX -fuzz '^FuzzKeyFile$' -fuzztime 60s ./tpm/

// Key files in testdata (made by TestWriteFuzzSeeds against swtpm) whose
// KEKs the EDK fuzzers use; wrapping with them needs no TPM.
const (
	fuzzRSAKey = "testdata/fuzz-rsa.tpmkey"
	fuzzECCKey = "testdata/fuzz-ecc.tpmkey"
)

// testKEK opens a testdata key file without a TPM (the device is never
// contacted by parsing or wrapping).
func testKEK(tb testing.TB, path string) *KeyKEK {
	tb.Helper()
	k, err := OpenKeyFile(&URI{KeyFile: path, Device: "tcp://127.0.0.1:1"})
	if err != nil {
		tb.Fatalf("%s: %v (regenerate with HSMENV_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./tpm/)", path, err)
	}
	return k
}

// FuzzKeyFile: the key file parser never panics, fails only with
// ErrKeyFile, and whatever it accepts formats back into a file that parses
// to the same key (and formats identically), with no more key bytes than
// the input held.
func FuzzKeyFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := parseKeyFile(b)
		if err != nil {
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("error without ErrKeyFile: %v", err)
			}
			return
		}
		if n := len(kf.obj.blob()); n > len(b) {
			t.Fatalf("a %d-byte key from a %d-byte file", n, len(b))
		}
		pub, err := kf.publicKey()
		if err != nil {
			t.Fatalf("accepted a key file without a usable public key: %v", err)
		}
		switch k := pub.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() != 2048 || kf.keyType != KeyRSA2048 {
				t.Fatalf("accepted a %d-bit RSA key as %s", k.N.BitLen(), kf.keyType)
			}
		case *ecdh.PublicKey:
			if k.Curve() != ecdh.P256() || kf.keyType != KeyECCP256 {
				t.Fatalf("accepted a %v key as %s", k.Curve(), kf.keyType)
			}
		default:
			t.Fatalf("a %T public key", pub)
		}
		out, err := kf.marshal()
		if err != nil {
			t.Fatalf("an accepted key file does not format: %v", err)
		}
		kf2, err := parseKeyFile(out)
		if err != nil {
			t.Fatalf("a formatted key file does not parse: %v\n%s", err, out)
		}
		if kf.keyType != kf2.keyType || !bytes.Equal(kf.obj.srkName, kf2.obj.srkName) ||
			!reflect.DeepEqual(kf.obj.policy, kf2.obj.policy) || !bytes.Equal(kf.obj.blob(), kf2.obj.blob()) {
			t.Fatalf("round trip changed the key: %+v vs %+v", kf, kf2)
		}
		if out2, err := kf2.marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("formatting is not stable: %v", err)
		}
	})
}

// FuzzSealEDK: the sealed-EDK parser never panics, fails only with
// ErrUnwrap, and what it accepts is exactly what marshalSealInfo and blob
// write back, with at most 24 PCRs and a SHA-256 object name.
func FuzzSealEDK(f *testing.F) {
	f.Fuzz(func(t *testing.T, info, ct []byte) {
		o, err := parseSealEDK(envelope.EncryptedDataKey{ProviderID: ProviderSeal, ProviderInfo: info, Ciphertext: ct})
		if err != nil {
			if !errors.Is(err, ErrUnwrap) {
				t.Fatalf("error without ErrUnwrap: %v", err)
			}
			return
		}
		if got := marshalSealInfo(o); !bytes.Equal(got, info) {
			t.Fatalf("provider info does not round-trip: %x -> %x", info, got)
		}
		if got := o.blob(); !bytes.Equal(got, ct) {
			t.Fatalf("ciphertext does not round-trip: %x -> %x", ct, got)
		}
		if len(o.policy.pcrs) > maxPCR+1 || len(o.policy.pcrs) != len(o.policy.values) {
			t.Fatalf("%d PCRs, %d values", len(o.policy.pcrs), len(o.policy.values))
		}
		if n := len(o.name()); n != srkNameLen {
			t.Fatalf("a %d-byte object name", n)
		}
		if err := checkPublic(o.head, o.policy, ErrUnwrap); err != nil {
			t.Fatalf("accepted an object that fails checkPublic: %v", err)
		}
	})
}

// FuzzECDHEDK: the checks of legacy ECDH EDKs (ProviderECDH: provider
// info, ephemeral point, ciphertext size) never panic, fail only with
// ErrUnwrap, and accept only provider info that round-trips, names the key,
// and carries a P-256 point, with a ciphertext of a 1..maxDEK-byte data key.
func FuzzECDHEDK(f *testing.F) {
	k := testKEK(f, fuzzECCKey)
	f.Fuzz(func(t *testing.T, info, ct []byte) {
		edk := envelope.EncryptedDataKey{ProviderID: ProviderECDH, ProviderInfo: info, Ciphertext: ct}
		e, err := k.parseEDK(edk)
		if err != nil {
			if !errors.Is(err, ErrUnwrap) {
				t.Fatalf("error without ErrUnwrap: %v", err)
			}
			return
		}
		parsed := e.legacy
		if !k.Claims(edk) || e.raw != nil || parsed.name != k.name {
			t.Fatalf("accepted an EDK for key %q", parsed.name)
		}
		if got := parsed.marshal(); !bytes.Equal(got, info) {
			t.Fatalf("provider info does not round-trip: %x -> %x", info, got)
		}
		if !bytes.Equal(e.peer.Bytes(), parsed.ephem) || len(parsed.iv) != gcmIVLen {
			t.Fatalf("ephemeral point %x, IV %x", parsed.ephem, parsed.iv)
		}
		if n := len(ct) - gcmTagLen; n < 1 || n > maxDEK {
			t.Fatalf("accepted a %d-byte ciphertext", len(ct))
		}
	})
}

// FuzzRawECDHEDK: the checks of raw ECDH EDKs (rawecdh.ProviderID) never
// panic, fail only with ErrUnwrap, and accept only provider info of P-256
// whose recipient is this key's public point, whose sender (the point the
// TPM multiplies) is on P-256, and that is the info of those two keys, with
// a ciphertext of salt, commitment key, a 16-, 24- or 32-byte data key and
// tag.
func FuzzRawECDHEDK(f *testing.F) {
	k := testKEK(f, fuzzECCKey)
	f.Fuzz(func(t *testing.T, info, ct []byte) {
		edk := envelope.EncryptedDataKey{ProviderID: rawecdh.ProviderID, ProviderInfo: info, Ciphertext: ct}
		e, err := k.parseEDK(edk)
		if err != nil {
			if !errors.Is(err, ErrUnwrap) {
				t.Fatalf("error without ErrUnwrap: %v", err)
			}
			if k.Claims(edk) && !strings.Contains(err.Error(), "ciphertext") {
				t.Fatalf("claimed an EDK it cannot parse: %v", err)
			}
			return
		}
		if !k.Claims(edk) || e.legacy != nil || e.raw == nil {
			t.Fatal("accepted an EDK it does not claim")
		}
		if e.raw.Curve != ecdh.P256() || !e.raw.Recipient.Equal(k.ecPub) || !e.peer.Equal(e.raw.Sender) {
			t.Fatalf("accepted provider info %x for another key or curve", info)
		}
		want := []byte{1, 0, 0, 0, 33}
		want = append(append(want, rawecdh.Compressed(e.raw.Recipient)...), 0, 0, 0, 33)
		if want = append(want, rawecdh.Compressed(e.raw.Sender)...); !bytes.Equal(want, info) {
			t.Fatalf("provider info %x is not that of its keys, %x", info, want)
		}
		if n := len(ct) - rawECDHOverhead; n != 16 && n != 24 && n != 32 {
			t.Fatalf("accepted a %d-byte ciphertext", len(ct))
		}
	})
}

// FuzzRSAEDK: the RSA EDK checks never panic, fail only with ErrUnwrap, and
// accept only EDKs with the key's namespace and name and a ciphertext of the
// key's size.
func FuzzRSAEDK(f *testing.F) {
	k := testKEK(f, fuzzRSAKey)
	f.Fuzz(func(t *testing.T, providerID string, info, ct []byte) {
		edk := envelope.EncryptedDataKey{ProviderID: providerID, ProviderInfo: info, Ciphertext: ct}
		_, err := k.parseEDK(edk)
		if err != nil {
			if !errors.Is(err, ErrUnwrap) {
				t.Fatalf("error without ErrUnwrap: %v", err)
			}
			return
		}
		if providerID != k.namespace || string(info) != k.name || len(ct) != k.rsaPub.Size() || !k.Claims(edk) {
			t.Fatalf("accepted provider id %q, info %q, a %d-byte ciphertext", providerID, info, len(ct))
		}
	})
}

// pinMarker replaces pin-values in FuzzParseURI's differential checks.
const pinMarker = "Zq7PinMarker"

// FuzzParseURI: the tpm: URI parser never panics and fails only with
// keyuri.ErrSyntax; its errors do not depend on pin-values (the same URI
// with other pin-values fails with the very same text, so no pin-value, or
// part of one, is in it); an accepted URI formats (String) to one that
// parses back to the same URI with the pin-value hidden, String does not
// depend on the pin-value, and URIs that break it (an unknown or repeated
// attribute) fail without it.
func FuzzParseURI(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, pinMarker) {
			return
		}
		swapped, pins := pintest.Replace(s, func(string) string { return pinMarker })
		u, err := ParseURI(s)
		if err != nil {
			if !errors.Is(err, keyuri.ErrSyntax) {
				t.Fatalf("error without ErrSyntax: %v", err)
			}
			if len(pins) > 0 {
				if _, err2 := ParseURI(swapped); err2 != nil && err2.Error() != err.Error() {
					t.Fatalf("the error depends on the pin-value:\n%v\n%v", err, err2)
				}
			}
			return
		}
		str := u.String()
		back, err := ParseURI(str)
		if err != nil {
			t.Fatalf("String %q does not parse: %v", str, err)
		}
		want := *u
		if want.PINValue != "" {
			want.PINValue = "***"
		}
		if !reflect.DeepEqual(back, &want) {
			t.Fatalf("round trip through %q: %+v, want %+v", str, back, want)
		}
		if back.String() != str {
			t.Fatalf("String is not stable: %q, %q", str, back.String())
		}
		if u.PINValue == "" {
			return
		}
		alt := *u
		alt.PINValue = pinMarker
		if alt.String() != str || strings.Contains(str, pinMarker) {
			t.Fatalf("String depends on the pin-value: %q vs %q", str, alt.String())
		}
		// URIs that fail after the pin-value: their errors must not
		// depend on it either.
		for _, bad := range []string{"&colour=red", "&device=x&device=y", "&pin-value=again", ";colour=red"} {
			v, vs := s+bad, swapped+bad
			if !strings.Contains(s, "?") && strings.HasPrefix(bad, "&") {
				v, vs = s+"?"+bad[1:], swapped+"?"+bad[1:]
			}
			_, e1 := ParseURI(v)
			_, e2 := ParseURI(vs)
			if e1 != nil && e2 != nil && e1.Error() != e2.Error() {
				t.Fatalf("the error depends on the pin-value:\n%v\n%v", e1, e2)
			}
			if e1 != nil && len(u.PINValue) >= 4 && strings.Contains(e1.Error(), u.PINValue) && (e2 == nil || !strings.Contains(e2.Error(), u.PINValue)) {
				t.Fatalf("the pin-value is in the error: %v", e1)
			}
		}
	})
}

// TestWriteFuzzSeeds writes the seed corpora of the fuzz targets from real
// key files and EDKs made against swtpm, and the key files the EDK fuzzers
// use. It runs only with HSMENV_WRITE_FUZZ_SEEDS=1; the corpora are checked
// in.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HSMENV_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set HSMENV_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz and the fuzz key files")
	}
	sw := tpmtest.Start(t)
	dev := sw.Device()
	d, err := OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	seed := func(target, name string, args ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	keyFile := func(name, typ, attrs, query string) []byte {
		path := filepath.Join(tmp, name+".tpmkey")
		if _, err := Generate(ctx, "tpm:key-file="+path+attrs+"?device="+dev+query, typ); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pin := "&pin-value=1234"
	for _, c := range []struct{ name, typ, attrs, query string }{
		{"rsa", KeyRSA2048, "", ""},
		{"ecc", KeyECCP256, "", ""},
		{"rsa-pcr-pin", KeyRSA2048, ";pcrs=sha256:0,7,16;pin=yes", pin},
		{"ecc-pcr", KeyECCP256, ";pcrs=16", ""},
		{"ecc-pin", KeyECCP256, ";pin=yes", pin},
	} {
		b := keyFile(c.name, c.typ, c.attrs, c.query)
		seed("FuzzKeyFile", c.name, b)
		if c.attrs == "" {
			if err := os.WriteFile(filepath.Join("testdata", "fuzz-"+c.name+".tpmkey"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct{ name, uri string }{
		{"nopolicy", "tpm:seal?device=" + dev},
		{"pcrs", "tpm:seal;pcrs=0,7,16,23?device=" + dev},
		{"pin", "tpm:seal;pin=yes?device=" + dev + pin},
		{"pcr-pin", "tpm:seal;pcrs=16;pin=yes?device=" + dev + pin},
	} {
		u, err := ParseURI(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		k, err := OpenSeal(u)
		if err != nil {
			t.Fatal(err)
		}
		dek := make([]byte, 32)
		rand.Read(dek)
		edk, err := k.Wrap(ctx, dek, nil)
		if err != nil {
			t.Fatal(err)
		}
		seed("FuzzSealEDK", c.name, edk.ProviderInfo, edk.Ciphertext)
	}
	ecc, rsa := testKEK(t, fuzzECCKey), testKEK(t, fuzzRSAKey)
	for i, ec := range []envelope.EncryptionContext{nil, {"purpose": "fuzz", "ключ": "値"}} {
		for _, n := range []int{16, 32} {
			dek := make([]byte, n)
			rand.Read(dek)
			edk, err := ecc.WrapLegacyECDH(dek, ec)
			if err != nil {
				t.Fatal(err)
			}
			seed("FuzzECDHEDK", fmt.Sprintf("dek%d-ctx%d", n, i), edk.ProviderInfo, edk.Ciphertext)
			if edk, err = ecc.Wrap(ctx, dek, ec); err != nil {
				t.Fatal(err)
			}
			seed("FuzzRawECDHEDK", fmt.Sprintf("dek%d-ctx%d", n, i), edk.ProviderInfo, edk.Ciphertext)
			edk, err = rsa.Wrap(ctx, dek, ec)
			if err != nil {
				t.Fatal(err)
			}
			seed("FuzzRSAEDK", fmt.Sprintf("dek%d-ctx%d", n, i), edk.ProviderID, edk.ProviderInfo, edk.Ciphertext)
		}
	}
	for i, s := range []string{
		"tpm:seal",
		"tpm:seal;pcrs=sha256:0,7;pin=yes?device=/dev/tpmrm0&pin-source=file:/etc/hsmenv/pin",
		"tpm:seal;pin=yes?device=tcp://127.0.0.1:2321&pin-value=1234",
		"tpm:seal;srk=000b1fd4e2ab0f3c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6?device=unix:///run/swtpm.sock",
		"tpm:key-file=/etc/hsmenv/backup.tpmkey;pcrs=7;x-name=backup;x-namespace=ns?device=tcp://[::1]:2321",
		"tpm:key-file=%2Ftmp%2Fk%3B1.tpmkey;pin=true?pin-value=p%26in%3Dx",
		"tpm:seal?pin%2Dvalue=secret;part&device=/dev/tpm0",
		"tpm:seal?pin-value=a?b&pin-value=c",
		"tpm:seal;pin-value=inpath?pin-value=%zz",
		"TPM:seal;pcrs=23,0,1",
		"tpm:seal;key-file=/x",
	} {
		seed("FuzzParseURI", fmt.Sprintf("uri%02d", i), s)
	}
}

// TestWriteFuzzRegressionSeeds writes the seeds of what fuzzing found
// (from the key files in testdata): key files without the PUBLIC KEY block
// whose TPM public area holds no usable key, an ECC point off the curve and
// a short RSA modulus, which parseKeyFile used to accept. It runs with
// HSMENV_WRITE_FUZZ_SEEDS=1, after TestWriteFuzzSeeds.
func TestWriteFuzzRegressionSeeds(t *testing.T) {
	if os.Getenv("HSMENV_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set HSMENV_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	for name, b := range keyFileRegressions(t) {
		path := filepath.Join("testdata", "fuzz", "FuzzKeyFile", name)
		if err := os.WriteFile(path, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// keyFileRegressions derives the regression key files from the fuzz key
// files: the key file's TPM2B_PUBLIC with unique replaced, re-encoded
// without the PUBLIC KEY block.
func keyFileRegressions(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for name, path := range map[string]string{"regress-ecc-off-curve": fuzzECCKey, "regress-rsa-short-modulus": fuzzRSAKey} {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		block, _ := pem.Decode(b)
		var o object
		pub, err := o.parseBlob(block.Bytes, ErrKeyFile)
		if err != nil {
			tb.Fatal(err)
		}
		tp, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
		if err != nil {
			tb.Fatal(err)
		}
		if tp.Type == tpm2.TPMAlgECC {
			pt, _ := tp.Unique.ECC()
			y := bytes.Clone(pt.Y.Buffer)
			y[len(y)-1] ^= 1
			tp.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: pt.X, Y: tpm2.TPM2BECCParameter{Buffer: y}})
		} else {
			tp.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: []byte{0xC5}})
		}
		o.pub = tpm2.New2B(*tp)
		block.Bytes = o.blob()
		out[name] = pem.EncodeToMemory(block)
	}
	return out
}
