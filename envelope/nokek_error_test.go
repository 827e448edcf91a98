package envelope

import (
	"errors"
	"strings"
	"testing"
)

// The error of a message no KEK opens names KEKs that failed for the same
// reason together, and stays near one short line when the reasons differ,
// counting the KEKs it does not spell out; every cause stays reachable
// with errors.Is.
func TestNoKEKErrorLine(t *testing.T) {
	wrong := errors.New("raw AES key: wrong key, or the EDK or context was altered")
	gone := errors.New("token not found: the module has no initialized token; make one with softhsm2-util --init-token")
	pin := errors.New("PIN: token \"demo\" rejected the PIN; it will not be sent again, since wrong PINs lock tokens")
	name := func(i int) string { return "raw-aes:namespace=backups;name=k" + string(rune('1'+i)) }

	same := &noKEKError{edks: 3}
	for i := range 3 {
		same.fails = append(same.fails, kekFailure{kek: name(i), errs: []error{wrong}})
	}
	want := "no key could unwrap any encrypted data key: " + name(0) + ", " + name(1) + ", " + name(2) + ": " + wrong.Error()
	if got := same.Error(); got != want {
		t.Errorf("same reason:\n got %s\nwant %s", got, want)
	}

	mixed := &noKEKError{edks: 4, fails: []kekFailure{
		{kek: name(0), errs: []error{wrong}},
		{kek: name(1), errs: []error{gone}},
		{kek: name(2), errs: []error{pin}},
		{kek: name(3)},
	}}
	got := mixed.Error()
	if len(got) > errorLineMax+80 || !strings.Contains(got, name(0)+": "+wrong.Error()) ||
		!strings.Contains(got, "2 other keys failed for other reasons") || !strings.Contains(got, "no EDK names the other key") {
		t.Errorf("mixed reasons (%d chars): %s", len(got), got)
	}
	for _, cause := range []error{ErrNoKEK, wrong, gone, pin} {
		if !errors.Is(mixed, cause) {
			t.Errorf("errors.Is(%v) is false", cause)
		}
	}

	short := &noKEKError{edks: 2, fails: []kekFailure{{kek: "a", errs: []error{wrong}}, {kek: "b", errs: []error{pin}}}}
	if got := short.Error(); !strings.Contains(got, "a: "+wrong.Error()+"; b: "+pin.Error()) {
		t.Errorf("two short reasons are both given: %s", got)
	}
}
