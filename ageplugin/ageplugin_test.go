package ageplugin_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"filippo.io/age/tag"

	"github.com/hsmenv/hsmenv/ageplugin"
	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/resolver"
)

// encrypt encrypts pt to rs with the age library.
func encrypt(t *testing.T, pt []byte, rs ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decrypt decrypts ct with ids with the age library.
func decrypt(ct []byte, ids ...age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(ct), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// keyFor makes a key of keyType at uri and looks it up as the plugin's
// --generate does.
func keyFor(t *testing.T, uri, keyType string) ageplugin.Key {
	t.Helper()
	ctx := context.Background()
	if keyType != "" {
		if _, err := resolver.GenerateKey(ctx, uri, keyType, resolver.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	k, err := ageplugin.Lookup(ctx, uri, resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// roundTrip checks that what the key's recipient string encrypts (parsed
// as age 1.3 or the plugin would) opens with its identity string, and
// returns the ciphertext.
func roundTrip(t *testing.T, k ageplugin.Key) []byte {
	t.Helper()
	recipient, err := k.Recipient()
	if err != nil {
		t.Fatal(err)
	}
	var r age.Recipient
	if k.P256 != nil {
		if !strings.HasPrefix(recipient, "age1tag1") {
			t.Fatalf("P-256 key's recipient %s is not age1tag1", recipient)
		}
		// age 1.3 parses it itself: no plugin, no device.
		if r, err = tag.ParseRecipient(recipient); err != nil {
			t.Fatal(err)
		}
	} else {
		if !strings.HasPrefix(recipient, "age1hsmenv1") {
			t.Fatalf("recipient %s is not age1hsmenv1", recipient)
		}
		r = pluginRecipient(t, recipient)
	}
	idStr, err := k.Identity()
	if err != nil {
		t.Fatal(err)
	}
	id := identity(t, idStr)
	pt := make([]byte, 3000)
	rand.Read(pt)
	ct := encrypt(t, pt, r)
	got, err := decrypt(ct, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("decrypted plaintext differs")
	}
	return ct
}

// pluginRecipient parses an age1hsmenv1 string as the plugin does.
func pluginRecipient(t *testing.T, s string) age.Recipient {
	t.Helper()
	k, err := ageplugin.ParseRecipient(s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ageplugin.NewRecipient(context.Background(), k, resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// identity parses an identity string as the plugin does.
func identity(t *testing.T, s string) *ageplugin.Identity {
	t.Helper()
	k, err := ageplugin.ParseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ageplugin.NewIdentity(context.Background(), k, resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSoftHSMKinds(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for _, kt := range []string{"aes-256", "rsa-3072", "ec-p256", "ec-p384"} {
		t.Run(kt, func(t *testing.T) {
			k := keyFor(t, tok.URI(kt), kt)
			if (k.P256 != nil) != (kt == "ec-p256") {
				t.Fatalf("P-256 key found: %v, want %v", k.P256 != nil, kt == "ec-p256")
			}
			roundTrip(t, k)
			if k.P256 == nil {
				return
			}
			// The age1hsmenv1 form of a P-256 key (age < 1.3, sops)
			// writes the p256tag stanza age 1.3 would, on the host.
			compat, err := k.PluginRecipient()
			if err != nil {
				t.Fatal(err)
			}
			pt := []byte("compat")
			ct := encrypt(t, pt, pluginRecipient(t, compat))
			if !bytes.Contains(ct, []byte("\n-> p256tag ")) {
				t.Fatalf("compat recipient wrote no p256tag stanza:\n%s", ct[:200])
			}
			idStr, _ := k.Identity()
			if got, err := decrypt(ct, identity(t, idStr)); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("compat round trip: %q, %v", got, err)
			}
		})
	}
}

func TestTPMKinds(t *testing.T) {
	sw := tpmtest.Start(t)
	dir := t.TempDir()
	for _, c := range []struct{ name, uri, keyType string }{
		{"seal", "tpm:seal?device=" + sw.Device(), ""},
		{"rsa-2048", "tpm:key-file=" + filepath.Join(dir, "rsa.key") + "?device=" + sw.Device(), "rsa-2048"},
		{"ecc-p256", "tpm:key-file=" + filepath.Join(dir, "ecc.key") + "?device=" + sw.Device(), "ecc-p256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := keyFor(t, c.uri, c.keyType)
			if (k.P256 != nil) != (c.name == "ecc-p256") {
				t.Fatalf("P-256 key found: %v", k.P256 != nil)
			}
			roundTrip(t, k)
		})
	}
}

// A file to several recipients opens with each identity alone; an identity
// of another key is age's "incorrect identity", without a device error.
func TestSeveralRecipientsAndWrongKey(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	ec := keyFor(t, tok.URI("ec"), "ec-p256")
	aes := keyFor(t, tok.URI("aes"), "aes-256")
	other := keyFor(t, tok.URI("other-ec"), "ec-p256")
	otherAES := keyFor(t, tok.URI("other-aes"), "aes-256")
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ecR, _ := ec.Recipient()
	aesR, _ := aes.Recipient()
	tagR, err := tag.ParseRecipient(ecR)
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("to three recipients")
	ct := encrypt(t, pt, tagR, pluginRecipient(t, aesR), x.Recipient())
	for name, k := range map[string]ageplugin.Key{"ec": ec, "aes": aes} {
		s, _ := k.Identity()
		if got, err := decrypt(ct, identity(t, s)); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s identity alone: %q, %v", name, got, err)
		}
	}
	if got, err := decrypt(ct, x); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("X25519 identity alone: %q, %v", got, err)
	}
	for name, k := range map[string]ageplugin.Key{"other-ec": other, "other-aes": otherAES} {
		s, _ := k.Identity()
		_, err := decrypt(ct, identity(t, s))
		var noMatch *age.NoIdentityMatchError
		if !errors.As(err, &noMatch) {
			t.Errorf("%s identity: %v, want no identity matched", name, err)
		}
	}
}

// Altered stanzas give one error naming the key, never a file key.
func TestTamperedStanza(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	for _, kt := range []string{"ec-p256", "aes-256"} {
		t.Run(kt, func(t *testing.T) {
			k := keyFor(t, tok.URI(kt), kt)
			ct := roundTrip(t, k)
			idStr, _ := k.Identity()
			id := identity(t, idStr)
			// The stanza body is the line after the stanza's "-> " line.
			hdr := strings.SplitN(string(ct), "\n---", 2)[0]
			lines := strings.Split(hdr, "\n")
			body := lines[2]
			// The start (a length, for hsmenv stanzas) and the end (the
			// wrapped key) must give an error about the key; the middle
			// (for hsmenv stanzas, the provider info naming the key) may
			// instead make the stanza another key's: no identity matches.
			for _, pos := range []int{0, len(body) / 2, len(body) - 2} {
				alt := []byte(body)
				if alt[pos] == 'A' {
					alt[pos] = 'B'
				} else {
					alt[pos] = 'A'
				}
				bad := bytes.Replace(ct, []byte(body), alt, 1)
				_, err := decrypt(bad, id)
				if err == nil {
					t.Fatalf("altered stanza body at %d decrypted", pos)
				}
				var noMatch *age.NoIdentityMatchError
				if errors.As(err, &noMatch) && pos != len(body)/2 {
					t.Fatalf("altered stanza at %d: %v; want an error about the key", pos, err)
				}
				if noMatch == nil && !strings.Contains(err.Error(), "pkcs11:token=") || strings.Contains(err.Error(), tok.PIN) {
					t.Fatalf("altered stanza at %d: %v; want the key URI named, no PIN", pos, err)
				}
			}
		})
	}
}

// A device key that is not the identity's (the token's key replaced under
// the same label) is named as such.
func TestReplacedKey(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	k := keyFor(t, tok.URI("ec"), "ec-p256")
	ct := roundTrip(t, k)
	other := keyFor(t, tok.URI("ec2"), "ec-p256")
	forged := ageplugin.Key{URI: other.URI, P256: k.P256} // names ec2 but claims ec's public key
	s, err := forged.Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, err = decrypt(ct, identity(t, s))
	if err == nil || !strings.Contains(err.Error(), "not the P-256 key this identity was made for") {
		t.Fatalf("got %v", err)
	}
}

// The token gone: one error naming the key, not a hang, not "no identity".
func TestDeviceGone(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	k := keyFor(t, tok.URI("ec"), "ec-p256")
	ct := roundTrip(t, k)
	gone := ageplugin.Key{URI: strings.Replace(k.URI, tok.Module, filepath.Join(t.TempDir(), "missing.so"), 1), P256: k.P256}
	s, _ := gone.Identity()
	_, err := decrypt(ct, identity(t, s))
	if err == nil || !strings.Contains(err.Error(), "missing.so") {
		t.Fatalf("got %v", err)
	}
}

// A PIN that the token rejects is asked for once and is one error. The
// key is made by OpenSC's pkcs11-tool in another process, and found by its
// public key, so this process has never logged in to the token.
func TestWrongPINAskedOnce(t *testing.T) {
	tool := softhsmtest.Require(t, "OpenSC (pkcs11-tool)", "pkcs11-tool")
	tok := softhsmtest.New(t, softhsmtest.Options{})
	cmd := exec.Command(tool, "--module", tok.Module, "--token-label", tok.Label, "--login", "--pin", tok.PIN,
		"--keypairgen", "--key-type", "EC:prime256v1", "--label", "ec", "--usage-derive")
	cmd.Env = append(os.Environ(), tok.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool: %v\n%s", err, out)
	}
	noPIN := "pkcs11:token=" + tok.Label + ";object=ec;type=public-key?module-path=" + tok.Module
	k, err := ageplugin.Lookup(context.Background(), noPIN, resolver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k.P256 == nil {
		t.Fatal("no P-256 key found")
	}
	r, _ := k.Recipient()
	tagR, err := tag.ParseRecipient(r)
	if err != nil {
		t.Fatal(err)
	}
	ct := encrypt(t, []byte("x"), tagR, tagR) // two stanzas for the key
	asked := 0
	id, err := ageplugin.NewIdentity(context.Background(), k, resolver.Options{PIN: func(context.Context, string, string) (string, error) {
		asked++
		return "not-" + tok.PIN, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = decrypt(ct, id)
	if err == nil || !strings.Contains(err.Error(), "PIN") || strings.Contains(err.Error(), "not-"+tok.PIN) {
		t.Fatalf("got %v", err)
	}
	if asked != 1 {
		t.Fatalf("PIN asked %d times, want 1", asked)
	}
	if got, err := decrypt(ct, identity(t, mustIdentity(t, ageplugin.Key{URI: noPIN + "&pin-source=file:" + tok.PINFile, P256: k.P256}))); err != nil || string(got) != "x" {
		t.Fatalf("with the right PIN: %q, %v", got, err)
	}
}

func mustIdentity(t *testing.T, k ageplugin.Key) string {
	t.Helper()
	s, err := k.Identity()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEncoding(t *testing.T) {
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	for _, k := range []ageplugin.Key{
		{URI: "pkcs11:token=a;object=b?module-path=/x.so&pin-source=file:/p"},
		{URI: "tpm:seal?device=/dev/tpmrm0", P256: priv.PublicKey()},
	} {
		s, err := k.Identity()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, "AGE-PLUGIN-HSMENV-1") {
			t.Fatalf("identity %s", s)
		}
		got, err := ageplugin.ParseIdentity(s)
		if err != nil || got.URI != k.URI || (k.P256 != nil) != (got.P256 != nil) || (k.P256 != nil && !got.P256.Equal(k.P256)) {
			t.Fatalf("identity round trip: %+v, %v", got, err)
		}
		r, err := k.PluginRecipient()
		if err != nil {
			t.Fatal(err)
		}
		got, err = ageplugin.ParseRecipient(r)
		if err != nil {
			t.Fatal(err)
		}
		if k.P256 != nil && (got.URI != "" || !got.P256.Equal(k.P256)) || k.P256 == nil && got.URI != k.URI {
			t.Fatalf("recipient round trip: %+v", got)
		}
	}
	if _, err := (ageplugin.Key{URI: "pkcs11:token=a;object=b?pin-value=1234"}).Identity(); err == nil || strings.Contains(err.Error(), "1234") {
		t.Fatalf("pin-value: %v", err)
	}
	for _, bad := range []string{
		"AGE-PLUGIN-OTHER-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQ8LJZW",
		"AGE-PLUGIN-HSMENV-1QQ9U9T6A",
		"not an identity",
	} {
		if _, err := ageplugin.ParseIdentity(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := ageplugin.DecodeIdentity([]byte{2, 1, 'x', ':'}); !errors.Is(err, ageplugin.ErrEncoding) {
		t.Errorf("version 2: %v", err)
	}
	if _, err := ageplugin.DecodeRecipient([]byte{1, 2, 3}); !errors.Is(err, ageplugin.ErrEncoding) {
		t.Errorf("short P-256 recipient: %v", err)
	}
	if _, err := ageplugin.DecodeIdentity(append([]byte{1, 1}, bytes.Repeat([]byte("a"), 5000)...)); !errors.Is(err, ageplugin.ErrEncoding) {
		t.Errorf("long URI: %v", err)
	}
}

func TestMain(m *testing.M) {
	os.Unsetenv("HSMENV_PKCS11_PIN")
	os.Exit(m.Run())
}
