package keyenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hsmenv/hsmenv/tpm"
)

// $TPM2TOOLS_TCTI is the default TPM after $HSMENV_TPM_DEVICE: used when
// that is unset or empty, never over it.
func TestDefaultTPMDevice(t *testing.T) {
	for _, c := range []struct{ hsmenv, tcti, want string }{
		{"", "", ""},
		{"", "swtpm:host=127.0.0.1,port=2321", "swtpm:host=127.0.0.1,port=2321"},
		{"tcp://127.0.0.1:2400", "swtpm:host=127.0.0.1,port=2321", "tcp://127.0.0.1:2400"},
		{"/dev/tpmrm0", "", "/dev/tpmrm0"},
	} {
		t.Setenv(TPMDevice, c.hsmenv)
		t.Setenv(TPM2ToolsTCTI, c.tcti)
		if got := DefaultTPMDevice(); got != c.want {
			t.Errorf("%s=%q %s=%q: %q, want %q", TPMDevice, c.hsmenv, TPM2ToolsTCTI, c.tcti, got, c.want)
		}
		if got := Options(nil).TPMDevice; got != c.want {
			t.Errorf("%s=%q %s=%q: Options().TPMDevice %q, want %q", TPMDevice, c.hsmenv, TPM2ToolsTCTI, c.tcti, got, c.want)
		}
	}
}

// A device error about the device $TPM2TOOLS_TCTI named says where it came
// from; not when $HSMENV_TPM_DEVICE is set, nor for another device.
func TestHintTPM2ToolsTCTI(t *testing.T) {
	t.Setenv(TPMDevice, "")
	t.Setenv(TPM2ToolsTCTI, "tabrmd:bus_type=session")
	_, err := tpm.OpenDevice(DefaultTPMDevice())
	if h := Hint(err); !strings.Contains(h, "$TPM2TOOLS_TCTI") {
		t.Fatalf("Hint(%v) = %q", err, h)
	}
	t.Setenv(TPM2ToolsTCTI, "swtpm:host=127.0.0.1,port=1")
	d, err := tpm.OpenDevice(DefaultTPMDevice())
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Status(t.Context())
	if h := Hint(err); !errors.Is(err, tpm.ErrDevice) || !strings.Contains(h, "$TPM2TOOLS_TCTI") {
		t.Fatalf("Hint(%v) = %q", err, h)
	}
	if h := Hint(fmt.Errorf("%w tcp://10.1.1.1:2321: refused", tpm.ErrDevice)); h != "" {
		t.Fatalf("Hint for another device: %q", h)
	}
	t.Setenv(TPMDevice, "tcp://127.0.0.1:1")
	if h := Hint(err); h != "" {
		t.Fatalf("Hint with %s set: %q", TPMDevice, h)
	}
}
