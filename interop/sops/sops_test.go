// Package sops_test drives sops's age key source
// (github.com/getsops/sops/v3/age v3.13.3: MasterKeyFromRecipient, Encrypt,
// Decrypt) with age-plugin-hsmenv on PATH, for keys in SoftHSM2 tokens and
// swtpm TPMs. It is a module of its own so that the main module does not
// depend on sops; `make test` runs it.
//
// What sops v3.13.3's age package does (read in its source, with
// filippo.io/age v1.3.2, which the module graph selects):
//
//   - Recipients: "age1pq1..." is a native hybrid recipient; any other
//     "age1" string with a second "1" is a plugin recipient (age's
//     plugin.NewRecipient: the name is the Bech32 HRP after "age1", the
//     binary age-plugin-NAME on PATH, started only when Encrypt wraps);
//     else X25519, or "ssh-". So "age1hsmenv1..." runs age-plugin-hsmenv,
//     and "age1tag1..." runs age-plugin-tag: sops has no native tag
//     recipient. Without age-plugin-tag on PATH, Encrypt fails with age's
//     *plugin.NotFoundError (`"tag" plugin not found`); with age v1.3.2's
//     filippo.io/age/extra/age-plugin-tag on PATH it encrypts (p256tag
//     stanza, no device) and the hsmenv identity decrypts. Both are tested.
//   - Identities (Decrypt, loaded once per MasterKey): SOPS_AGE_SSH_PRIVATE_KEY_FILE,
//     SOPS_AGE_SSH_PRIVATE_KEY_CMD, ~/.ssh/id_ed25519 and ~/.ssh/id_rsa,
//     SOPS_AGE_KEY (whitespace-separated), SOPS_AGE_KEY_FILE,
//     SOPS_AGE_KEY_CMD, and $XDG_CONFIG_HOME/sops/age/keys.txt (on Linux).
//     Blank lines and lines starting with "#" are skipped, so an identity
//     file's comments are fine; "AGE-PLUGIN-..." lines become age plugin
//     identities (one plugin process per identity and Unwrap); any other
//     line fails the whole source. age tries native identities first, then
//     the others in order, and stops at the first error that is not
//     age.ErrIncorrectIdentity: a plugin identity that answers "error"
//     for another key's stanza hides the identities after it.
//   - Plugin UI: age's plugin.NewTerminalUI, whose messages go to sops's
//     logger at info level (shown only with --verbose). request-secret,
//     request-public and confirm read /dev/tty (else a terminal stdin),
//     never stdin/stdout; without a terminal they fail at once and the
//     plugin is answered "fail". With a terminal a question waits for the
//     user with no timeout. Nothing else bounds a plugin: age waits on its
//     stdout for ever (logging "waiting on NAME plugin..." after 5 s). A
//     passphrase-protected ~/.ssh/id_* prompts through the same UI. The
//     plugin's stderr is discarded unless AGEDEBUG=plugin.
//
// So the tests run every sops operation in a child process (this test
// binary) in a session of its own, without a controlling terminal, under a
// timeout that kills the process group: a plugin question fails instead of
// waiting, and a hang fails the test instead of stalling it.
package sops_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// device is a key in a throw-away device.
type device struct {
	uri string
	env []string // what a process needs to reach the device (SOFTHSM2_CONF)
	// off makes the device unreachable and returns the function that
	// brings it back.
	off func() (on func())
	// gone are substrings of the error when the device is unreachable.
	gone []string
}

// softHSMKey makes a key of type typ (hsmenv keygen) in a new SoftHSM2
// token, whose URI carries pin-source=file:. Off swaps the token directory
// for an empty one: the token is unplugged.
func softHSMKey(t *testing.T, typ string) *device {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	d := &device{uri: tok.URI("sops-" + typ), env: tok.Env(), gone: []string{tok.Label}}
	keygen(t, d.env, d.uri, typ)
	d.off = func() func() { return moveAway(t, filepath.Join(tok.Dir, "tokens")) }
	return d
}

// tpmKey makes a TPM key file of type typ (hsmenv keygen), or for "seal"
// the tpm:seal URI, on a new swtpm. Off stops swtpm; on restarts it on the
// same state.
func tpmKey(t *testing.T, typ string) *device {
	sw := tpmtest.Start(t)
	d := &device{uri: "tpm:seal?device=" + sw.Device(), gone: []string{fmt.Sprintf("127.0.0.1:%d", sw.Port)}}
	if typ != "seal" {
		d.uri = "tpm:key-file=" + filepath.Join(t.TempDir(), "sops.tpmkey") + "?device=" + sw.Device()
		keygen(t, nil, d.uri, typ)
	}
	d.off = func() func() { sw.Stop(); return sw.Restart }
	return d
}

var kinds = []struct {
	name string
	make func(*testing.T) *device
	// ec: the recipient is age1tag1, and sops gets the identity file's
	// compat age1hsmenv1 recipient (p256tag stanza).
	ec bool
	// offline: encrypting needs no device (EC keys; a TPM RSA key file
	// holds its public key).
	offline bool
}{
	{"softhsm-aes-256", func(t *testing.T) *device { return softHSMKey(t, "aes-256") }, false, false},
	{"softhsm-ec-p256", func(t *testing.T) *device { return softHSMKey(t, "ec-p256") }, true, true},
	{"tpm-seal", func(t *testing.T) *device { return tpmKey(t, "seal") }, false, false},
	{"tpm-rsa-2048", func(t *testing.T) *device { return tpmKey(t, "rsa-2048") }, false, true},
	{"tpm-ec-p256", func(t *testing.T) *device { return tpmKey(t, "ec-p256") }, true, true},
}

// TestSopsRoundTrip: for each KEK kind, sops encrypts a data key to the
// recipient sops is told to use (the "# recipient:" age1hsmenv1 one, or
// for EC keys the "# recipient for age < 1.3 and sops:" one) and decrypts
// it with SOPS_AGE_KEY_FILE pointing at the identity file, and with
// SOPS_AGE_KEY holding its text, never asking a question (no terminal
// exists; SoftHSM2 URIs carry pin-source=file:). It checks the stanza type
// (hsmenv, or p256tag: the same stanza age >= 1.3 writes for age1tag1),
// that `-y` prints the recipient with the device gone, that encrypting
// needs the device exactly for symmetric keys and tpm:seal, and that
// decrypting with the device gone is one error within seconds that names
// the device, after which the device back decrypts again.
func TestSopsRoundTrip(t *testing.T) {
	needTools(t)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			d := k.make(t)
			id := generate(t, d.env, d.uri, k.ec)
			recipient, stanza := id.recipient, "hsmenv"
			if k.ec {
				recipient, stanza = id.compat, "p256tag"
			}
			dataKey := randBytes(32)

			on := d.off()
			if y, _ := run(t, d.env, "age-plugin-hsmenv", "-y", id.path); y != id.recipient+"\n" {
				on()
				t.Fatalf("-y with the device gone printed %q, want %s", y, id.recipient)
			}
			var enc string
			if k.offline {
				enc = encrypt(t, d.env, recipient, dataKey)
				on()
			} else {
				r := runSops(t, d.env, "encrypt", recipient, hex.EncodeToString(dataKey))
				on()
				failsQuickly(t, "encrypt with the device gone", r, d.gone...)
				enc = encrypt(t, d.env, recipient, dataKey)
			}
			if got := stanzaTypes(t, enc); !slices.Equal(got, []string{stanza}) {
				t.Fatalf("sops wrote stanzas %q, want [%s]", got, stanza)
			}

			keyFile := append(slices.Clone(d.env), "SOPS_AGE_KEY_FILE="+id.path)
			decrypts(t, keyFile, recipient, enc, dataKey)
			decrypts(t, append(slices.Clone(d.env), "SOPS_AGE_KEY="+id.text), recipient, enc, dataKey)

			on = d.off()
			r := decrypt(t, keyFile, recipient, enc)
			on()
			failsQuickly(t, "decrypt with the device gone", r, d.gone...)
			noQuestions(t, r)
			decrypts(t, keyFile, recipient, enc, dataKey)
		})
	}
}

// TestSopsTagRecipient documents what sops v3.13.3 does with an EC key's
// age1tag1 recipient itself: it takes it for a plugin recipient named
// "tag". With only age-plugin-hsmenv on PATH, MasterKeyFromRecipient
// accepts it and Encrypt fails: age-plugin-tag is not found. With age
// v1.3.2's age-plugin-tag on PATH (and the token unplugged) sops encrypts
// to it, a p256tag stanza, and the hsmenv identity file decrypts that.
func TestSopsTagRecipient(t *testing.T) {
	d := softHSMKey(t, "ec-p256")
	id := generate(t, d.env, d.uri, true)
	dataKey := randBytes(32)

	r := runSops(t, append(slices.Clone(d.env), "PATH="+needTools(t)), "encrypt", id.recipient, hex.EncodeToString(dataKey))
	if r.Err == "" || r.NotFound != "tag" || !strings.Contains(r.Err, "age-plugin-tag") {
		t.Fatalf("sops encrypt to %s without age-plugin-tag: result %.40q, error %q (plugin not found: %q); want age's \"tag\" plugin not found",
			id.recipient, r.Result, r.Err, r.NotFound)
	}
	t.Logf("without age-plugin-tag: %s", r.Err)

	on := d.off()
	enc := encrypt(t, append(slices.Clone(d.env), "PATH="+tools.tagDir+string(os.PathListSeparator)+tools.dir), id.recipient, dataKey)
	on()
	if got := stanzaTypes(t, enc); !slices.Equal(got, []string{"p256tag"}) {
		t.Fatalf("sops with age-plugin-tag wrote stanzas %q, want [p256tag]", got)
	}
	decrypts(t, append(slices.Clone(d.env), "SOPS_AGE_KEY_FILE="+id.path), id.recipient, enc, dataKey)
}

// TestSopsPINWithoutTerminal: a key URI without pin-source (the identity
// made with $HSMENV_PKCS11_PIN). sops decrypting without any PIN and
// without a terminal: the plugin asks once through age (request-secret),
// age's terminal UI cannot ask, and the result is one error within seconds.
// A wrong $HSMENV_PKCS11_PIN is one error, and the plugin asks nothing. The
// right one decrypts.
func TestSopsPINWithoutTerminal(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	uri := tok.URI("sops-pin")
	keygen(t, tok.Env(), uri, "aes-256")
	noPIN := strings.Replace(uri, "&pin-source=file:"+tok.PINFile, "", 1)
	if noPIN == uri || strings.Contains(noPIN, "pin-") {
		t.Fatalf("could not take pin-source out of %s", uri)
	}
	withPIN := append(tok.Env(), "HSMENV_PKCS11_PIN="+tok.PIN)
	id := generate(t, withPIN, noPIN, false)
	dataKey := randBytes(32)
	enc := encrypt(t, withPIN, id.recipient, dataKey)

	keyFile := append(tok.Env(), "SOPS_AGE_KEY_FILE="+id.path)
	r := decrypt(t, keyFile, id.recipient, enc)
	failsQuickly(t, "decrypt without a PIN or a terminal", r)
	if n := r.prompts(); n != 1 {
		t.Fatalf("the plugin asked %d times through age's terminal UI, want once:\n%s", n, r.stderr)
	}

	r = decrypt(t, append(slices.Clone(keyFile), "HSMENV_PKCS11_PIN=0"+tok.PIN), id.recipient, enc)
	failsQuickly(t, "decrypt with a wrong PIN", r, "PIN")
	noQuestions(t, r)

	decrypts(t, append(slices.Clone(keyFile), "HSMENV_PKCS11_PIN="+tok.PIN), id.recipient, enc, dataKey)
}

// TestSopsSeveralIdentities: sops's key file commonly holds several
// identities, and age stops at the first identity that fails with an error
// other than "incorrect identity". A data key encrypted to one AES key
// does not open with another key's identity alone (one error within
// seconds), and opens with a key file where the identities of an AES key
// and an EC key of the same token come before the right one; likewise for
// the EC key's file.
func TestSopsSeveralIdentities(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{})
	env := tok.Env()
	ids := map[string]*identity{}
	for _, k := range []struct {
		name, typ string
		ec        bool
	}{{"a", "aes-256", false}, {"b", "aes-256", false}, {"e", "ec-p256", true}} {
		uri := tok.URI("sops-" + k.name)
		keygen(t, env, uri, k.typ)
		ids[k.name] = generate(t, env, uri, k.ec)
	}
	dataKey := randBytes(32)
	encA := encrypt(t, env, ids["a"].recipient, dataKey)
	encE := encrypt(t, env, ids["e"].compat, dataKey)

	r := decrypt(t, append(slices.Clone(env), "SOPS_AGE_KEY_FILE="+ids["b"].path), ids["a"].recipient, encA)
	if r.Err == "" || r.elapsed > quick {
		t.Fatalf("decrypt with another key's identity: error %q after %v (result %.16q)", r.Err, r.elapsed, r.Result)
	}
	t.Logf("another key's identity: %v: %s", r.elapsed, r.Err)

	for _, c := range []struct {
		order     []string
		recipient string
		enc       string
	}{
		{[]string{"b", "e", "a"}, ids["a"].recipient, encA},
		{[]string{"a", "b", "e"}, ids["e"].compat, encE},
	} {
		var text strings.Builder
		for _, n := range c.order {
			text.WriteString(ids[n].text)
		}
		f := filepath.Join(t.TempDir(), "keys.txt")
		if err := os.WriteFile(f, []byte(text.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Run(strings.Join(c.order, "-"), func(t *testing.T) {
			decrypts(t, append(slices.Clone(env), "SOPS_AGE_KEY_FILE="+f), c.recipient, c.enc, dataKey)
		})
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
