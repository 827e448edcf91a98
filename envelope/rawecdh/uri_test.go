package rawecdh_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawecdh"
	"github.com/hsmenv/hsmenv/internal/keyuri"
	"github.com/hsmenv/hsmenv/resolver"
)

// TestOpenURI opens the three URI forms from PEM files on each curve and
// runs a message through them: ephemeral to discovery, static to discovery
// and to the peer's static URI.
func TestOpenURI(t *testing.T) {
	for _, name := range []string{"p256", "p384", "p521"} {
		c := mustCurve(t, name)
		r, s := genKey(t, c), genKey(t, c)
		rPub, rPriv := writeFile(t, "r.pub", pubPEM(t, r.PublicKey())), writeFile(t, "r.pem", privPEM(t, r))
		sPub, sPriv := writeFile(t, "s.pub", pubPEM(t, s.PublicKey())), writeFile(t, "s.pem", privPEM(t, s))
		base := "raw-ecdh:curve=" + name + ";schema="
		open := func(uri string) envelope.KEK {
			t.Helper()
			kek, err := rawecdh.OpenURI(ctx, uri)
			if err != nil {
				t.Fatalf("%s: %v", uri, err)
			}
			return kek
		}
		eph := open(base + "ephemeral?recipient-public-key=" + rPub)
		disc := open(base + "discovery?recipient-private-key=" + rPriv)
		static := open(base + "static?sender-private-key=" + sPriv + "&recipient-public-key=" + rPub)
		peer := open(base + "static?sender-private-key=" + rPriv + "&recipient-public-key=" + sPub)
		for _, pair := range [][2]envelope.KEK{{eph, disc}, {static, disc}, {static, peer}, {peer, static}} {
			msg, err := envelope.Encrypt(ctx, []byte("uri"), envelope.NewKeyring(pair[0]), envelope.EncryptOptions{Context: envelope.EncryptionContext{"a": "b"}})
			if err != nil {
				t.Fatal(err)
			}
			if got, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(pair[1]), envelope.DecryptOptions{}); err != nil || string(got) != "uri" {
				t.Fatalf("%v -> %v: %v", pair[0], pair[1], err)
			}
		}
		if !disc.(*rawecdh.KEK).PublicKey().Equal(r.PublicKey()) || !static.(*rawecdh.KEK).PublicKey().Equal(s.PublicKey()) {
			t.Fatal("PublicKey of the opened KEKs")
		}
	}
}

// TestOpenURIErrors: each bad URI or key file fails with a sentinel and a
// message naming the problem.
func TestOpenURIErrors(t *testing.T) {
	r256, r384 := genKey(t, ecdh.P256()), genKey(t, ecdh.P384())
	pub256, priv256 := writeFile(t, "r.pub", pubPEM(t, r256.PublicKey())), writeFile(t, "r.pem", privPEM(t, r256))
	pub384, priv384 := writeFile(t, "r384.pub", pubPEM(t, r384.PublicKey())), writeFile(t, "r384.pem", privPEM(t, r384))
	sec1DER, err := x509.MarshalECPrivateKey(mustECDSA(t, r256))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := writeFile(t, "sec1.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}))
	twoKeys := writeFile(t, "two.pub", append(pubPEM(t, r256.PublicKey()), pubPEM(t, r384.PublicKey())...))
	edPub, _, _ := ed25519.GenerateKey(nil)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	ed := writeFile(t, "ed.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}))
	x25519DER, _ := x509.MarshalPKIXPublicKey(genKey(t, ecdh.X25519()).PublicKey())
	x25519 := writeFile(t, "x.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: x25519DER}))
	big := writeFile(t, "big.pub", bytes.Repeat([]byte("A"), 9<<10))
	garbage := writeFile(t, "garbage.pub", []byte("not a key"))
	for _, tc := range []struct {
		uri, want string
		err       error
	}{
		{"raw-ecdh:curve=p256?recipient-public-key=" + pub256, `"schema" is required`, keyuri.ErrSyntax},
		{"raw-ecdh:schema=ephemeral?recipient-public-key=" + pub256, `"curve" is required`, keyuri.ErrSyntax},
		{"raw-ecdh:curve=p255;schema=ephemeral?recipient-public-key=" + pub256, `curve "p255"`, rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=oneway?recipient-public-key=" + pub256, `schema "oneway"`, rawecdh.ErrSchema},
		{"raw-ecdh:curve=p256;schema=ephemeral;name=x?recipient-public-key=" + pub256, `unknown path attribute "name"`, keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=ephemeral?public-key=" + pub256, `unknown query attribute "public-key"`, keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=ephemeral", "schema=ephemeral needs recipient-public-key", keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-private-key=" + priv256, "schema=ephemeral does not take recipient-private-key", keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=discovery?recipient-public-key=" + pub256, "schema=discovery does not take recipient-public-key", keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=discovery?sender-private-key=" + priv256, "schema=discovery does not take sender-private-key", keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=static?sender-private-key=" + priv256, "schema=static needs recipient-public-key", keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=static?recipient-public-key=" + pub256, "schema=static needs sender-private-key", keyuri.ErrSyntax},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + pub384, "holds a p384 key; the URI says curve=p256", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p384;schema=discovery?recipient-private-key=" + priv256, "holds a p256 key; the URI says curve=p384", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=static?sender-private-key=" + priv384 + "&recipient-public-key=" + pub256, "holds a p384 key", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + priv256, `a "PRIVATE KEY" PEM block, not "PUBLIC KEY"`, rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=discovery?recipient-private-key=" + pub256, `a "PUBLIC KEY" PEM block, not "PRIVATE KEY"`, rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=discovery?recipient-private-key=" + sec1, "SEC 1", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + twoKeys, "data after the PEM block", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + ed, "not a P-256, P-384 or P-521 key", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + x25519, "not a P-256, P-384 or P-521 key", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + garbage, "no PEM block", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + big, "too large", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=" + filepath.Join(t.TempDir(), "absent"), "no such file", rawecdh.ErrBadKey},
		{"raw-ecdh:curve=p256;schema=ephemeral?recipient-public-key=/dev/zero", "not a regular file", rawecdh.ErrBadKey},
	} {
		kek, err := rawecdh.OpenURI(ctx, tc.uri)
		if !errors.Is(err, tc.err) || kek != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %v saying %q", tc.uri, err, tc.err, tc.want)
		}
	}
}

// TestKeyFileFIFO: a FIFO that never ends fails with ErrBadKey instead of
// being read forever.
func TestKeyFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		buf := make([]byte, 4096)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := rawecdh.OpenURI(ctx, "raw-ecdh:curve=p256;schema=discovery?recipient-private-key="+fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, rawecdh.ErrBadKey) {
			t.Fatalf("endless FIFO: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still reading the FIFO after 15 s")
	}
}

// TestResolver: the resolver opens raw-ecdh URIs and prints the public key
// a peer encrypts to.
func TestResolver(t *testing.T) {
	r := genKey(t, ecdh.P384())
	rPriv := writeFile(t, "r.pem", privPEM(t, r))
	uri := "raw-ecdh:curve=p384;schema=discovery?recipient-private-key=" + rPriv
	kek, err := resolver.OpenKEK(ctx, uri, resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := kek.(*rawecdh.KEK); !ok {
		t.Fatalf("resolver opened a %T", kek)
	}
	p, err := resolver.PublicKeyPEM(ctx, uri, resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rawecdh.ParsePublicKeyPEM(p)
	if err != nil || !pub.Equal(r.PublicKey()) {
		t.Fatalf("pubkey: %v", err)
	}
	// The printed key is what an ephemeral URI encrypts to.
	eph, err := resolver.OpenKEK(ctx, "raw-ecdh:curve=p384;schema=ephemeral?recipient-public-key="+writeFile(t, "r.pub", p), resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := envelope.Encrypt(ctx, []byte("x"), envelope.NewKeyring(eph), envelope.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := envelope.Decrypt(ctx, msg, envelope.NewKeyring(kek), envelope.DecryptOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPEMHelpers: MarshalPublicKeyPEM and ParsePublicKeyPEM are inverse;
// infinity and out-of-range SPKIs of the MPL's TestECDH.dfy are refused.
func TestPEMHelpers(t *testing.T) {
	for _, name := range []string{"p256", "p384", "p521"} {
		k := genKey(t, mustCurve(t, name)).PublicKey()
		got, err := rawecdh.ParsePublicKeyPEM(pubPEM(t, k))
		if err != nil || !got.Equal(k) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := rawecdh.MarshalPublicKeyPEM(genKey(t, ecdh.X25519()).PublicKey()); !errors.Is(err, rawecdh.ErrBadKey) {
		t.Errorf("X25519: %v", err)
	}
	for _, der := range []string{
		"3019301306072a8648ce3d020106082a8648ce3d03010703020000", // ECC_256_PUBLIC_INF_FAIL_ON_LOAD
		"3016301006072a8648ce3d020106052b8104002203020000",       // ECC_384_PUBLIC_INF_FAIL_ON_LOAD
		"3059301306072a8648ce3d020106082a8648ce3d03010703420004" + // ECC_P256_PUBLIC_GP_FAIL_ON_LOAD
			strings.Repeat("ff", 64),
	} {
		b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: unhex(t, der)})
		if k, err := rawecdh.ParsePublicKeyPEM(b); !errors.Is(err, rawecdh.ErrBadKey) || k != nil {
			t.Errorf("%s...: %v", der[:40], err)
		}
	}
}
