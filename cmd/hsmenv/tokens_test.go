package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	softhsmtest "github.com/hsmenv/hsmenv/internal/softhsmtest"
)

type slotJSON struct {
	ID           uint `json:"slot_id"`
	TokenPresent bool `json:"token_present"`
	Token        *struct {
		Label        string   `json:"label"`
		Manufacturer string   `json:"manufacturer"`
		Model        string   `json:"model"`
		Serial       string   `json:"serial"`
		Flags        []string `json:"flags"`
		Profile      string   `json:"profile"`
		URI          string   `json:"uri"`
		Capabilities *struct {
			KEKs   []string `json:"keks"`
			Keygen []string `json:"keygen"`
			PKCS11 []string `json:"pkcs11"`
		} `json:"capabilities"`
	} `json:"token"`
}

// utilSlot is one slot as softhsm2-util --show-slots prints it.
type utilSlot struct {
	serial, label, model string
	initialized, userPIN bool
}

// showSlots parses softhsm2-util --show-slots.
func showSlots(t *testing.T, env []string) map[uint]utilSlot {
	cmd := exec.Command("softhsm2-util", "--show-slots")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	slots := map[uint]utilSlot{}
	var id uint
	seen := false
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "Slot "); ok {
			n, err := strconv.ParseUint(rest, 10, 64)
			if err != nil {
				t.Fatalf("softhsm2-util: %q", line)
			}
			id, seen = uint(n), true
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !seen {
			continue
		}
		s := slots[id]
		v = strings.TrimSpace(v)
		switch k {
		case "Serial number":
			s.serial = v
		case "Label":
			s.label = v
		case "Model":
			s.model = v
		case "Initialized":
			s.initialized = v == "yes"
		case "User PIN init.":
			s.userPIN = v == "yes"
		}
		slots[id] = s
	}
	return slots
}

// tokens lists two SoftHSM2 tokens of one label, a third one and the free
// slot as softhsm2-util sees them; the URI it prints names each token (with
// its serial when the label is not unique), and --mechanisms says what
// hsmenv would use there.
func TestTokens(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{Label: "first"})
	env := tok.Env()
	for _, label := range []string{"second", "first"} {
		cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", tok.PIN, "--so-pin", tok.SOPIN)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	want := showSlots(t, env)
	if len(want) != 4 {
		t.Fatalf("softhsm2-util shows %d slots, want 4", len(want))
	}

	var slots []slotJSON
	r := ok(t, run(t, nil, env, "tokens", "--module", tok.Module, "--json"))
	if err := json.Unmarshal(r.stdout, &slots); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(slots) != len(want) {
		t.Fatalf("%d slots, softhsm2-util shows %d:\n%s", len(slots), len(want), r.stdout)
	}
	uninitialized := 0
	for _, s := range slots {
		w, found := want[s.ID]
		if !found || !s.TokenPresent || s.Token == nil {
			t.Fatalf("slot %d: %+v, softhsm2-util: %+v", s.ID, s, w)
		}
		tk := s.Token
		if tk.Label != w.label || tk.Serial != w.serial || tk.Model != w.model || tk.Manufacturer != "SoftHSM project" || tk.Profile != "softhsm2" ||
			slices.Contains(tk.Flags, "initialized") != w.initialized || slices.Contains(tk.Flags, "user-pin-initialized") != w.userPIN {
			t.Errorf("slot %d: %+v, softhsm2-util: %+v", s.ID, *tk, w)
		}
		if !w.initialized {
			uninitialized++
			if tk.URI != "" {
				t.Errorf("uninitialized slot %d has URI %s", s.ID, tk.URI)
			}
			continue
		}
		if !slices.Contains(tk.Flags, "login-required") {
			t.Errorf("slot %d flags %v", s.ID, tk.Flags)
		}
		prefix := "pkcs11:token=" + tk.Label
		if tk.Label == "first" {
			prefix = "pkcs11:serial=" + tk.Serial + ";token=first"
		}
		if tk.URI != prefix+"?module-path="+tok.Module {
			t.Errorf("slot %d: URI %s", s.ID, tk.URI)
		}
		if tk.Capabilities != nil {
			t.Errorf("capabilities without --mechanisms")
		}
		// The URI names the token: a key made through it is there.
		uri := strings.Replace(tk.URI, "?", ";object=k?", 1) + "&pin-source=file:" + tok.PINFile
		ok(t, run(t, nil, env, "keygen", "--key", uri))
	}
	if uninitialized != 1 {
		t.Errorf("%d uninitialized slots, want 1", uninitialized)
	}

	var second string
	for _, w := range want {
		if w.label == "second" {
			second = w.serial
		}
	}
	// Text: one block per slot; the module from $HSMENV_PKCS11_MODULE.
	r = ok(t, run(t, nil, append(env, "HSMENV_PKCS11_MODULE="+tok.Module), "tokens", "--mechanisms"))
	text := string(r.stdout)
	for _, w := range []string{`token:        "second"`, "(not initialized)", "uri:          pkcs11:token=second?module-path=", "serial:       " + second + "\n",
		"keks:         aes-gcm, aes-kw, aes-kwp, rsa-oaep (oaep-sha1), raw-ecdh", "keygen:       aes-256, rsa-2048", "CKM_AES_GCM (encrypt, decrypt)"} {
		if !strings.Contains(text, w) {
			t.Errorf("tokens --mechanisms lacks %q:\n%s", w, text)
		}
	}
	if n := strings.Count(text, "\nslot ") + 1; n != 4 {
		t.Errorf("%d slot blocks:\n%s", n, text)
	}

	fails(t, run(t, nil, []string{"HSMENV_PKCS11_MODULE="}, "tokens"), "give --module SO or set HSMENV_PKCS11_MODULE")
}

// A token without AES-GCM: --mechanisms says AES keys get key wrap, and
// that RSA and EC keys cannot be made.
func TestTokensMechanisms(t *testing.T) {
	tok := softhsmtest.New(t, softhsmtest.Options{Mechanisms: []string{"CKM_AES_KEY_WRAP", "CKM_AES_KEY_GEN"}})
	var slots []slotJSON
	r := ok(t, run(t, nil, tok.Env(), "tokens", "--module", tok.Module, "--mechanisms", "--json"))
	if err := json.Unmarshal(r.stdout, &slots); err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.Token == nil || s.Token.Label != tok.Label {
			continue
		}
		c := s.Token.Capabilities
		if c == nil || !slices.Equal(c.KEKs, []string{"aes-kw"}) || !slices.Equal(c.Keygen, []string{"aes-256"}) ||
			!slices.Equal(c.PKCS11, []string{"CKM_AES_KEY_WRAP (wrap, unwrap)", "CKM_AES_KEY_GEN (generate)"}) {
			t.Fatalf("capabilities of a token with AES key wrap only: %s", r.stdout)
		}
		return
	}
	t.Fatalf("token %s not listed: %s", tok.Label, r.stdout)
}

// NSS softokn (no database): its generic slot, with the nss profile's
// choices (AES key wrap, not its broken AES-GCM).
func TestTokensNSS(t *testing.T) {
	softhsmtest.Require(t, "NSS softokn (libnss3)", softhsmtest.NSSModule)
	var slots []slotJSON
	r := ok(t, run(t, nil, nil, "tokens", "--module", softhsmtest.NSSModule, "--mechanisms", "--json"))
	if err := json.Unmarshal(r.stdout, &slots); err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if tk := s.Token; tk != nil && tk.Label == "NSS Generic Crypto Services" {
			if tk.Profile != "nss" || tk.Capabilities == nil || len(tk.Capabilities.KEKs) == 0 || tk.Capabilities.KEKs[0] != "aes-kw" ||
				slices.Contains(tk.Capabilities.KEKs, "aes-gcm") || tk.URI != "pkcs11:token=NSS%20Generic%20Crypto%20Services?module-path="+softhsmtest.NSSModule {
				t.Fatalf("NSS: %s", r.stdout)
			}
			return
		}
	}
	t.Fatalf("no NSS Generic Crypto Services token: %s", r.stdout)
}
