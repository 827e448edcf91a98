package main_test

// age-plugin-hsmenv driven by real age binaries: Debian's age 1.1.1 and age
// 1.3.2 (built by the test setup), over real keys in SoftHSM2 tokens and
// swtpm. Every child runs with a timeout and without a terminal
// (harness_test.go).

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age/plugin"

	"github.com/hsmenv/hsmenv/internal/softhsmtest"
	"github.com/hsmenv/hsmenv/internal/tpmtest"
)

// TestRoundTrips: for each KEK kind, an identity file from --generate; age
// 1.1.1 and 1.3.2 each encrypt to its recipient (1.1.1 to the age1hsmenv1
// one for P-256 keys, 1.3.2 to both) and to the identity (-e -i), with the
// expected stanza; each file decrypts with each age to the same bytes.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	setup(t)
	agebins := ages(t)
	kinds := []struct {
		name string
		make func(t *testing.T) kek
	}{
		{"softhsm/aes-256", func(t *testing.T) kek {
			return hsmKey(t, softhsmtest.New(t, softhsmtest.Options{}), "kek-aes", "aes-256")
		}},
		{"softhsm/rsa-3072", func(t *testing.T) kek {
			return hsmKey(t, softhsmtest.New(t, softhsmtest.Options{}), "kek-rsa", "rsa-3072")
		}},
		{"softhsm/ec-p256", func(t *testing.T) kek {
			return hsmKey(t, softhsmtest.New(t, softhsmtest.Options{}), "kek-p256", "ec-p256")
		}},
		{"softhsm/ec-p384", func(t *testing.T) kek {
			return hsmKey(t, softhsmtest.New(t, softhsmtest.Options{}), "kek-p384", "ec-p384")
		}},
		{"swtpm/seal", func(t *testing.T) kek { return tpmKey(t, tpmtest.Start(t), "seal", "", "") }},
		{"swtpm/rsa-2048", func(t *testing.T) kek { return tpmKey(t, tpmtest.Start(t), "rsa-2048", "", "") }},
		{"swtpm/ec-p256", func(t *testing.T) kek { return tpmKey(t, tpmtest.Start(t), "ec-p256", "", "") }},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			k := kind.make(t)
			env := childEnv(true, k.env...)
			id := newIdentity(t, k, env)
			wantStanza := "hsmenv"
			if k.p256 {
				wantStanza = "p256tag"
				checkTagRecipient(t, k, id)
			}
			dir := t.TempDir()
			in, pt := randomFile(t, dir, 100_000) // two STREAM chunks
			var files []string
			for _, a := range agebins {
				var args [][]string
				switch {
				case !k.p256:
					args = append(args, []string{"-r", id.recipient})
				case a.tagOK:
					args = append(args, []string{"-r", id.recipient}, []string{"-r", id.legacy})
				default:
					args = append(args, []string{"-r", id.legacy})
				}
				args = append(args, []string{"-i", id.file})
				for i, to := range args {
					file := filepath.Join(dir, a.name+"-"+strconv.Itoa(i)+".age")
					ok(t, run(t, runTimeout, env, nil, a.path, append(append([]string{"-e"}, to...), "-o", file, in)...))
					if got := stanzas(t, file); !slices.Equal(got, []string{wantStanza}) {
						t.Errorf("%s -e %s: stanzas %q, want [%s]", a.name, strings.Join(to, " "), got, wantStanza)
					}
					files = append(files, file)
				}
			}
			for _, f := range files {
				for _, a := range agebins {
					decryptOK(t, a, env, id.file, f, pt)
				}
			}
		})
	}
}

// TestSeveralRecipients: one file to an HSM key (AES, stanza hsmenv), a TPM
// key (ECC P-256, stanza p256tag) and an age X25519 key opens with each
// identity alone: the TPM identity without the token's configuration, the
// HSM identity with the TPM gone, the X25519 one with neither the plugin
// nor a device.
func TestSeveralRecipients(t *testing.T) {
	t.Parallel()
	setup(t)
	a11, a13 := ageDebian(t), age132(t)
	tok := softhsmtest.New(t, softhsmtest.Options{})
	hk := hsmKey(t, tok, "kek", "aes-256")
	sw := tpmtest.Start(t)
	tk := tpmKey(t, sw, "ec-p256", "", "")
	hsmEnv := childEnv(true, hk.env...)
	hid := newIdentity(t, hk, hsmEnv)
	tid := newIdentity(t, tk, childEnv(true))
	dir := t.TempDir()
	xid := filepath.Join(dir, "x25519.txt")
	r := ok(t, run(t, runTimeout, childEnv(false), nil, a13.keygen, "-o", xid))
	_, xpub, found := strings.Cut(strings.TrimSpace(string(r.stderr)), "Public key: ")
	if !found || !strings.HasPrefix(xpub, "age1") {
		t.Fatalf("age-keygen: %q", r.stderr)
	}
	in, pt := randomFile(t, dir, 5000)
	f13, f11 := filepath.Join(dir, "13.age"), filepath.Join(dir, "11.age")
	ok(t, run(t, runTimeout, hsmEnv, nil, a13.path, "-e", "-r", hid.recipient, "-r", tid.recipient, "-r", xpub, "-o", f13, in))
	ok(t, run(t, runTimeout, hsmEnv, nil, a11.path, "-e", "-r", hid.recipient, "-r", tid.legacy, "-r", xpub, "-o", f11, in))
	for _, f := range []string{f13, f11} {
		got := stanzas(t, f)
		slices.Sort(got)
		if want := []string{"X25519", "hsmenv", "p256tag"}; !slices.Equal(got, want) {
			t.Fatalf("%s: stanzas %q, want %q", filepath.Base(f), got, want)
		}
	}
	agebins := []ageBin{a11, a13}
	for _, f := range []string{f13, f11} {
		for _, a := range agebins {
			decryptOK(t, a, childEnv(true), tid.file, f, pt)
		}
	}
	sw.Stop()
	for _, f := range []string{f13, f11} {
		for _, a := range agebins {
			decryptOK(t, a, hsmEnv, hid.file, f, pt)
			decryptOK(t, a, childEnv(false), xid, f, pt)
		}
	}
}

// TestTagRecipientNeedsNothing: age 1.3.2 encrypts to the age1tag1
// recipients of a token's and a TPM's P-256 key with the plugin not on
// PATH, no SOFTHSM2_CONF, the token's files moved away and swtpm stopped;
// each device-backed identity then decrypts the file through the plugin.
func TestTagRecipientNeedsNothing(t *testing.T) {
	t.Parallel()
	setup(t)
	a13 := age132(t)
	tok := softhsmtest.New(t, softhsmtest.Options{})
	hk := hsmKey(t, tok, "kek", "ec-p256")
	sw := tpmtest.Start(t)
	tk := tpmKey(t, sw, "ec-p256", "", "")
	hsmEnv := childEnv(true, hk.env...)
	hid := newIdentity(t, hk, hsmEnv)
	tid := newIdentity(t, tk, childEnv(true))
	dir := t.TempDir()
	in, pt := randomFile(t, dir, 3000)

	bare := childEnv(false)
	tokens, away := filepath.Join(tok.Dir, "tokens"), filepath.Join(tok.Dir, "tokens.away")
	if err := os.Rename(tokens, away); err != nil {
		t.Fatal(err)
	}
	sw.Stop()
	// The plugin is out of reach: its own recipient cannot be used.
	fails(t, run(t, failTimeout, bare, nil, a13.path, "-e", "-r", hid.legacy, "-o", filepath.Join(dir, "no.age"), in), "age-plugin-hsmenv", "not found")
	file := filepath.Join(dir, "tag.age")
	ok(t, run(t, runTimeout, bare, nil, a13.path, "-e", "-r", hid.recipient, "-r", tid.recipient, "-o", file, in))
	if got := stanzas(t, file); !slices.Equal(got, []string{"p256tag", "p256tag"}) {
		t.Fatalf("stanzas %q, want two p256tag", got)
	}

	if err := os.Rename(away, tokens); err != nil {
		t.Fatal(err)
	}
	sw.Restart()
	decryptOK(t, a13, hsmEnv, hid.file, file, pt)
	decryptOK(t, a13, childEnv(true), tid.file, file, pt)
}

// TestFailures: wrong PIN, no PIN and no terminal, device gone, wrong key,
// tampered file: each is one clear error within seconds, with both ages,
// and age -o writes nothing.
func TestFailures(t *testing.T) {
	t.Parallel()
	setup(t)
	agebins := ages(t)

	t.Run("softhsm-pin", func(t *testing.T) {
		t.Parallel()
		tok := softhsmtest.New(t, softhsmtest.Options{})
		dir := t.TempDir()
		pinFile := filepath.Join(dir, "pin")
		writeFile(t, pinFile, tok.PIN+"\n")
		env := childEnv(true, tok.Env()...)
		for _, k := range []kek{hsmKey(t, tok, "aes", "aes-256"), hsmKey(t, tok, "p256", "ec-p256")} {
			in, _ := randomFile(t, t.TempDir(), 1000)
			// Identity and file made while pinFile holds the right PIN.
			k.uri = strings.Replace(k.uri, "pin-source=file:"+tok.PINFile, "pin-source=file:"+pinFile, 1)
			id := newIdentity(t, k, env)
			file := filepath.Join(dir, k.kind+".age")
			ok(t, run(t, runTimeout, env, nil, agebins[1].path, "-e", "-r", id.recipient, "-o", file, in))
			writeFile(t, pinFile, "000000\n")
			for _, a := range agebins {
				msg := decryptFails(t, a, env, id.file, file, "rejected the PIN")
				namesKey(t, msg, id)
				t.Logf("%s, %s, wrong PIN in pin-source: %s", k.kind, a.name, msg)
			}
			writeFile(t, pinFile, tok.PIN+"\n")
		}

		// No pin-source: the PIN from $HSMENV_PKCS11_PIN, else age must ask
		// on a terminal that does not exist.
		k := hsmKey(t, tok, "aes-env", "aes-256")
		k.uri = strings.Replace(k.uri, "&pin-source=file:"+tok.PINFile, "", 1)
		withPIN := childEnv(true, append(k.env, "HSMENV_PKCS11_PIN="+tok.PIN)...)
		id := newIdentity(t, k, withPIN)
		idData, err := os.ReadFile(id.file)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(idData, []byte(tok.PIN)) {
			t.Fatalf("the identity file holds the PIN:\n%s", idData)
		}
		in, pt := randomFile(t, t.TempDir(), 1000)
		file := filepath.Join(dir, "env.age")
		ok(t, run(t, runTimeout, withPIN, nil, agebins[0].path, "-e", "-r", id.recipient, "-o", file, in))
		for _, a := range agebins {
			t.Logf("%s, no PIN, no terminal: %s", a.name, decryptFails(t, a, env, id.file, file, "no terminal", "PIN", "HSMENV_PKCS11_PIN"))
			t.Logf("%s, wrong $HSMENV_PKCS11_PIN: %s", a.name, decryptFails(t, a, childEnv(true, append(k.env, "HSMENV_PKCS11_PIN=000000")...), id.file, file, "rejected the PIN"))
			t.Logf("%s, empty $HSMENV_PKCS11_PIN: %s", a.name, decryptFails(t, a, childEnv(true, append(k.env, "HSMENV_PKCS11_PIN=")...), id.file, file, "HSMENV_PKCS11_PIN"))
			decryptOK(t, a, withPIN, id.file, file, pt)
		}
	})

	t.Run("tpm-pin", func(t *testing.T) {
		t.Parallel()
		sw := tpmtest.Start(t)
		dir := t.TempDir()
		pinFile := filepath.Join(dir, "pin")
		writeFile(t, pinFile, "right pin\n")
		k := tpmKey(t, sw, "seal", ";pin=yes", "&pin-source=file:"+pinFile)
		env := childEnv(true)
		id := newIdentity(t, k, env)
		in, pt := randomFile(t, dir, 1000)
		file := filepath.Join(dir, "seal.age")
		ok(t, run(t, runTimeout, env, nil, agebins[1].path, "-e", "-r", id.recipient, "-o", file, in))
		writeFile(t, pinFile, "wrong pin\n")
		for _, a := range agebins {
			before := lockoutCounter(t, sw)
			msg := decryptFails(t, a, env, id.file, file, "rejected the PIN")
			namesKey(t, msg, id)
			t.Logf("%s, wrong TPM PIN: %s", a.name, msg)
			if after := lockoutCounter(t, sw); after != before+1 {
				t.Errorf("%s: the TPM's lockout counter went from %d to %d, want +1: a wrong PIN is tried once", a.name, before, after)
			}
		}
		// No pin-source and no terminal: nothing reaches the TPM.
		k.uri = strings.Replace(k.uri, "&pin-source=file:"+pinFile, "", 1)
		noSource := newIdentity(t, k, childEnv(true, "HSMENV_TPM_PIN=right pin"))
		for _, a := range agebins {
			before := lockoutCounter(t, sw)
			t.Logf("%s, no TPM PIN, no terminal: %s", a.name, decryptFails(t, a, env, noSource.file, file, "no terminal", "PIN", "HSMENV_TPM_PIN"))
			if after := lockoutCounter(t, sw); after != before {
				t.Errorf("%s: the TPM's lockout counter went from %d to %d without a PIN", a.name, before, after)
			}
			decryptOK(t, a, childEnv(true, "HSMENV_TPM_PIN=right pin"), noSource.file, file, pt)
		}
	})

	t.Run("softhsm-gone", func(t *testing.T) {
		t.Parallel()
		tok := softhsmtest.New(t, softhsmtest.Options{})
		env := childEnv(true, tok.Env()...)
		dir := t.TempDir()
		in, _ := randomFile(t, dir, 1000)
		var ids []ident
		var files []string
		for _, k := range []kek{hsmKey(t, tok, "aes", "aes-256"), hsmKey(t, tok, "p256", "ec-p256")} {
			id := newIdentity(t, k, env)
			file := filepath.Join(dir, k.kind+".age")
			ok(t, run(t, runTimeout, env, nil, agebins[1].path, "-e", "-r", id.recipient, "-o", file, in))
			ids, files = append(ids, id), append(files, file)
		}
		// The token removed (its directory in the token store).
		tokens := filepath.Join(tok.Dir, "tokens")
		entries, err := os.ReadDir(tokens)
		if err != nil || len(entries) != 1 {
			t.Fatalf("token store %s: %v, %d entries", tokens, err, len(entries))
		}
		if err := os.RemoveAll(filepath.Join(tokens, entries[0].Name())); err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			for _, a := range agebins {
				msg := decryptFails(t, a, env, ids[i].file, files[i], "token not found")
				namesKey(t, msg, ids[i])
				t.Logf("%s, token gone: %s", a.name, msg)
			}
		}
		// The whole token store gone: SoftHSM2 does not start.
		if err := os.RemoveAll(tokens); err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			for _, a := range agebins {
				msg := decryptFails(t, a, env, ids[i].file, files[i], "C_Initialize")
				namesKey(t, msg, ids[i])
				t.Logf("%s, token store gone: %s", a.name, msg)
			}
		}
	})

	t.Run("swtpm-gone", func(t *testing.T) {
		t.Parallel()
		sw := tpmtest.Start(t)
		env := childEnv(true)
		dir := t.TempDir()
		in, _ := randomFile(t, dir, 1000)
		var ids []ident
		var files []string
		for _, k := range []kek{tpmKey(t, sw, "seal", "", ""), tpmKey(t, sw, "ec-p256", "", "")} {
			id := newIdentity(t, k, env)
			file := filepath.Join(dir, k.kind+".age")
			ok(t, run(t, runTimeout, env, nil, agebins[1].path, "-e", "-r", id.recipient, "-o", file, in))
			ids, files = append(ids, id), append(files, file)
		}
		sw.Stop()
		for i := range ids {
			for _, a := range agebins {
				msg := decryptFails(t, a, env, ids[i].file, files[i], "127.0.0.1:"+strconv.Itoa(sw.Port))
				namesKey(t, msg, ids[i])
				t.Logf("%s, swtpm stopped: %s", a.name, msg)
			}
		}
	})

	t.Run("wrong-key", func(t *testing.T) {
		t.Parallel()
		tok := softhsmtest.New(t, softhsmtest.Options{})
		sw := tpmtest.Start(t)
		env := childEnv(true, tok.Env()...)
		dir := t.TempDir()
		in, _ := randomFile(t, dir, 1000)
		pairs := [][2]kek{
			{hsmKey(t, tok, "aes-a", "aes-256"), hsmKey(t, tok, "aes-b", "aes-256")},
			{hsmKey(t, tok, "p256-a", "ec-p256"), hsmKey(t, tok, "p256-b", "ec-p256")},
			{tpmKey(t, sw, "ec-p256", "", ""), tpmKey(t, sw, "ec-p256", "", "")},
		}
		for i, p := range pairs {
			a, b := newIdentity(t, p[0], env), newIdentity(t, p[1], env)
			file := filepath.Join(dir, strconv.Itoa(i)+".age")
			ok(t, run(t, runTimeout, env, nil, agebins[1].path, "-e", "-r", a.recipient, "-o", file, in))
			for _, ab := range agebins {
				t.Logf("%s, %s of another key: %s", ab.name, p[1].kind, decryptFails(t, ab, env, b.file, file, "no identity matched"))
			}
		}
	})

	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		tok := softhsmtest.New(t, softhsmtest.Options{})
		env := childEnv(true, tok.Env()...)
		dir := t.TempDir()
		in, _ := randomFile(t, dir, 1000)
		for _, k := range []kek{hsmKey(t, tok, "aes", "aes-256"), hsmKey(t, tok, "p256", "ec-p256")} {
			id := newIdentity(t, k, env)
			file := filepath.Join(dir, k.kind+".age")
			ok(t, run(t, runTimeout, env, nil, agebins[1].path, "-e", "-r", id.recipient, "-o", file, in))
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// The end of the stanza body (the wrapped file key): it ends at
			// the header's "---" line. The last character holds padding
			// bits: change the one before.
			mac := bytes.Index(data, []byte("\n---"))
			body := mac - 2
			if data[body] == '\n' {
				body--
			}
			// The payload: past the "--- MAC" line and the 16-byte nonce,
			// in the first (only) chunk.
			payload := mac + 1 + bytes.IndexByte(data[mac+1:], '\n') + 1 + 16 + 10
			// A stanza that does not open is named as altered (for the
			// hsmenv stanza, SoftHSM2's CKR_GENERAL_ERROR on an AES-GCM tag
			// mismatch reads as one).
			stanzaWant := "altered"
			for _, c := range []struct {
				what string
				at   int
				want string
			}{{"stanza body", body, stanzaWant}, {"payload", payload, "payload"}} {
				bad := bytes.Clone(data)
				bad[c.at] = flipBase64(bad[c.at], c.what == "payload")
				tampered := filepath.Join(dir, k.kind+"-"+strings.ReplaceAll(c.what, " ", "-")+".age")
				if err := os.WriteFile(tampered, bad, 0o600); err != nil {
					t.Fatal(err)
				}
				for _, a := range agebins {
					msg := decryptFails(t, a, env, id.file, tampered, c.want)
					if c.what == "stanza body" {
						namesKey(t, msg, id)
					}
					t.Logf("%s, %s, tampered %s: %s", a.name, k.kind, c.what, msg)
				}
			}
		}
	})
}

// flipBase64 changes a character of an unpadded base64 line into another
// one (or, for binary data, flips a bit).
func flipBase64(b byte, binary bool) byte {
	if binary {
		return b ^ 0x01
	}
	if b == 'A' {
		return 'B'
	}
	return 'A'
}

// TestCommandLine: -y on stdin and on a file of several identities, with
// no device; --generate without -o; --generate refusing pin-value, an
// existing -o file and a key that does not exist.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	setup(t)
	tok := softhsmtest.New(t, softhsmtest.Options{})
	sw := tpmtest.Start(t)
	env := childEnv(true, tok.Env()...)
	keys := []kek{hsmKey(t, tok, "aes", "aes-256"), hsmKey(t, tok, "p256", "ec-p256"), tpmKey(t, sw, "seal", "", "")}
	var ids []ident
	var all []byte
	for _, k := range keys {
		id := newIdentity(t, k, env)
		data, err := os.ReadFile(id.file)
		if err != nil {
			t.Fatal(err)
		}
		// The identity carries the URI with its pin-source, never a PIN.
		_, idData, err := plugin.ParseIdentity(id.identity)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k.uri, tok.PINFile) && !bytes.Contains(idData, []byte(tok.PINFile)) {
			t.Errorf("the identity of %s does not keep its pin-source: %q", k.uri, idData)
		}
		if bytes.Contains(idData, []byte(tok.PIN)) || bytes.Contains(data, []byte(tok.PIN)) {
			t.Errorf("the identity of %s holds the PIN", k.uri)
		}
		// Without -o: the same identity file on stdout.
		r := ok(t, run(t, runTimeout, env, nil, pluginBin, "--generate", "--key", k.uri))
		if got := parseIdentityFile(t, r.stdout, k.p256); got.recipient != id.recipient || got.legacy != id.legacy {
			t.Errorf("--generate without -o: recipient %q / %q, with -o %q / %q", got.recipient, got.legacy, id.recipient, id.legacy)
		}
		ids, all = append(ids, id), append(all, data...)
	}

	// -y needs no device: the token's files and the TPM gone.
	if err := os.Rename(filepath.Join(tok.Dir, "tokens"), filepath.Join(tok.Dir, "tokens.away")); err != nil {
		t.Fatal(err)
	}
	sw.Stop()
	bare := childEnv(false)
	var want string
	for _, id := range ids {
		data, _ := os.ReadFile(id.file)
		r := ok(t, run(t, runTimeout, bare, data, pluginBin, "-y"))
		if got := string(r.stdout); got != id.recipient+"\n" {
			t.Errorf("-y on stdin: %q, want %q", got, id.recipient+"\n")
		}
		want += id.recipient + "\n"
	}
	allFile := filepath.Join(t.TempDir(), "identities.txt")
	if err := os.WriteFile(allFile, all, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ok(t, run(t, runTimeout, bare, nil, pluginBin, "-y", allFile)); string(r.stdout) != want {
		t.Errorf("-y FILE: %q, want %q", r.stdout, want)
	}
	if r := ok(t, run(t, runTimeout, bare, all, pluginBin, "-y")); string(r.stdout) != want {
		t.Errorf("-y on stdin: %q, want %q", r.stdout, want)
	}
	if err := os.Rename(filepath.Join(tok.Dir, "tokens.away"), filepath.Join(tok.Dir, "tokens")); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "id.txt")
	// pin-value is refused, and the error does not show the PIN.
	withValue := strings.Replace(keys[0].uri, "pin-source=file:"+tok.PINFile, "pin-value="+tok.PIN, 1)
	msg := fails(t, run(t, failTimeout, env, nil, pluginBin, "--generate", "--key", withValue, "-o", out), "pin-value")
	if strings.Contains(msg, tok.PIN) {
		t.Errorf("the error shows the PIN: %q", msg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("--generate with pin-value wrote %s", out)
	}
	// An existing -o file is kept.
	writeFile(t, out, "keep me\n")
	fails(t, run(t, failTimeout, env, nil, pluginBin, "--generate", "--key", keys[0].uri, "-o", out), "exist")
	if data, _ := os.ReadFile(out); string(data) != "keep me\n" {
		t.Errorf("--generate overwrote an existing -o file: %q", data)
	}
	// A key that does not exist: say so, and which.
	out2 := filepath.Join(dir, "id2.txt")
	missing := tok.URI("no-such-key")
	msg = fails(t, run(t, failTimeout, env, nil, pluginBin, "--generate", "--key", missing, "-o", out2), "not found")
	namesKey(t, msg, ident{uri: missing})
	if _, err := os.Stat(out2); err == nil {
		t.Errorf("--generate of a missing key wrote %s", out2)
	}
	// Making keys is hsmenv keygen's job: the help says so.
	r := run(t, runTimeout, env, nil, pluginBin, "--help")
	if help := string(r.stdout) + string(r.stderr); !strings.Contains(help, "hsmenv keygen") || !strings.Contains(help, "--generate") {
		t.Errorf("--help does not point at hsmenv keygen: %s", help)
	}
}
