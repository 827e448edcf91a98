package tpm

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Device strings, TCTI strings among them, and the canonical device each
// means; the existing forms keep theirs.
func TestNormalizeDeviceTCTI(t *testing.T) {
	rel, err := filepath.Abs("swtpm.sock")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"", "/dev/tpmrm0"},
		{"/dev/tpmrm0", "/dev/tpmrm0"},
		{"tcp://127.0.0.1:2321", "tcp://127.0.0.1:2321"},
		{"unix:///run/swtpm//sock", "unix:///run/swtpm/sock"},
		{"swtpm.sock", rel}, // a relative path stays one
		{"swtpm:host=127.0.0.1,port=2321", "tcp://127.0.0.1:2321"},
		{"swtpm:port=2400,host=10.0.0.7", "tcp://10.0.0.7:2400"},
		{"swtpm:port=2400", "tcp://localhost:2400"},
		{"swtpm:host=::1", "tcp://[::1]:2321"},
		{"swtpm", "tcp://localhost:2321"},
		{"swtpm:", "tcp://localhost:2321"},
		{"SWTPM:host=h", "tcp://h:2321"},
		{"libtss2-tcti-swtpm.so.0:port=9", "tcp://localhost:9"},
		{"swtpm:path=/run/swtpm/sock", "unix:///run/swtpm/sock"},
		{"mssim:host=127.0.0.1,port=2321", "mssim:host=127.0.0.1,port=2321"},
		{"mssim:port=2321,host=127.0.0.1", "mssim:host=127.0.0.1,port=2321"},
		{"mssim", "mssim:host=localhost,port=2321"},
		{"device:/dev/tpmrm0", "/dev/tpmrm0"},
		{"device:/dev//tpm0", "/dev/tpm0"},
		{"device", "/dev/tpm0"},
	} {
		got, err := normalizeDevice(c.in)
		if err != nil || got != c.want {
			t.Errorf("normalizeDevice(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		// The canonical form is a fixed point: a Device opened by either
		// is the same Device.
		if again, err := normalizeDevice(got); err != nil || again != got {
			t.Errorf("normalizeDevice(%q) = %q, %v; want it unchanged", got, again, err)
		}
	}
}

// Unknown TCTI names and bad configurations: one ErrDevice line naming
// what is wrong; unknown names list the forms hsmenv takes.
func TestNormalizeDeviceTCTIErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"tabrmd", `does not speak the "tabrmd" TCTI; it takes swtpm:host=H,port=P (or swtpm:path=SOCKET), mssim:host=H,port=P, device:/dev/tpmrm0`},
		{"tabrmd:bus_name=com.intel.tss2.Tabrmd", `does not speak the "tabrmd" TCTI`},
		{"libtpms:", `does not speak the "libtpms" TCTI`},
		{"cmd:tpm2-something", `"cmd" TCTI`},
		{"spi-ltt2go", `"spi-ltt2go" TCTI`},
		{"foo:bar", `does not speak the "foo" TCTI`},
		{"swtpm:port=0", `port="0": want 1..65535`},
		{"swtpm:port=70000", `want 1..65535`},
		{"swtpm:port=x", `want 1..65535`},
		{"swtpm:hots=h", `unknown key "hots" (known: host, port, path)`},
		{"swtpm:host", `"host": want key=value`},
		{"swtpm:host=a,host=b", `host= given twice`},
		{"swtpm:path=rel/sock", `want an absolute path`},
		{"swtpm:path=/s,port=3", `path= excludes host= and port=`},
		{"mssim:path=/s", `path= is not supported here`},
		{"mssim:port=65535", `no platform port`},
		{"device:path=/dev/tpm0", `device: takes the path of a character device`},
		{"http://tpm", `want a device path, tcp://HOST:PORT, unix:///PATH or a TCTI string`},
	} {
		got, err := normalizeDevice(c.in)
		if err == nil {
			t.Errorf("normalizeDevice(%q) = %q, want an error with %q", c.in, got, c.want)
			continue
		}
		if !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("normalizeDevice(%q): %v; want ErrDevice with %q", c.in, err, c.want)
		}
	}
}
