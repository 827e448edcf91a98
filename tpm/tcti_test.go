package tpm_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/internal/tpmtest"
	"github.com/hsmenv/hsmenv/tpm"
)

// tctiRoundTrip seals a data key on the TPM that dev names and unseals it,
// reads its status, and closes the Device so that the next form can reach
// the same swtpm (it serves one connection at a time). It returns the
// status.
func tctiRoundTrip(t *testing.T, dev string) *tpm.StatusInfo {
	t.Helper()
	roundTrip(t, open(t, "tpm:seal;pin=yes?device="+dev+"&pin-value=1234"))
	d, err := tpm.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatalf("%s: Status: %v", dev, err)
	}
	t.Logf("%s is %s: %s %s, firmware %s", dev, d.Path(), st.Manufacturer, st.Vendor, st.FirmwareVersion())
	return st
}

// Every TCTI form tpm2-tools writes reaches a real swtpm: a sealed data key
// round trip and a status through each, all one TPM (one SRK).
func TestTCTIStrings(t *testing.T) {
	sw := tpmtest.Start(t)
	port := strconv.Itoa(sw.Port)
	srk := tctiRoundTrip(t, sw.Device()).SRKName
	for _, dev := range []string{
		"swtpm:host=127.0.0.1,port=" + port,
		"swtpm:port=" + port + ",host=127.0.0.1",
		"swtpm:port=" + port, // host localhost, as in tpm2-tss
		"mssim:host=127.0.0.1,port=" + strconv.Itoa(sw.MSSIM(t)),
		"mssim:port=" + strconv.Itoa(sw.MSSIM(t)),
	} {
		if got := tctiRoundTrip(t, dev).SRKName; !bytes.Equal(got, srk) {
			t.Fatalf("%s: SRK %x, want %x (another TPM?)", dev, got, srk)
		}
	}
	// The URI's device= takes the TCTI string as it is (its '=' and ','
	// included), and so does WithDevice.
	kek := open(t, "tpm:seal", tpm.WithDevice("swtpm:host=127.0.0.1,port="+port))
	roundTrip(t, kek)
	if d, err := tpm.OpenDevice("swtpm:host=127.0.0.1,port=" + port); err != nil || d.Path() != sw.Device() {
		t.Fatalf("OpenDevice: %v, %v; want the Device of %s", d, err, sw.Device())
	} else {
		d.Close()
	}

	// A swtpm on a unix socket: swtpm:path=, and device: with the socket's
	// path (device:PATH is PATH, and hsmenv opens a socket path as a
	// socket).
	sock := tpmtest.StartUnix(t)
	usrk := tctiRoundTrip(t, sock.Device()).SRKName
	for _, dev := range []string{"swtpm:path=" + sock.Socket, "device:" + sock.Socket} {
		if got := tctiRoundTrip(t, dev).SRKName; !bytes.Equal(got, usrk) {
			t.Fatalf("%s: SRK %x, want %x", dev, got, usrk)
		}
	}
}

// device:PATH opens the character device PATH: a missing one fails as
// /dev/tpmrm0 does, naming the path.
func TestTCTIDeviceMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "tpmrm9")
	d, err := tpm.OpenDevice("device:" + missing)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Status(ctx)
	if !errors.Is(err, tpm.ErrDevice) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no TPM here?") {
		t.Fatalf("device:%s: %v", missing, err)
	}
}

// Unknown TCTIs fail at once, listing what hsmenv speaks, in OpenDevice
// and in a URI.
func TestTCTIUnknown(t *testing.T) {
	const want = "it takes swtpm:host=H,port=P (or swtpm:path=SOCKET), mssim:host=H,port=P, device:/dev/tpmrm0"
	for _, dev := range []string{"tabrmd", "tabrmd:bus_type=session", "libtpms:", "cmd:tpm2_send"} {
		if _, err := tpm.OpenDevice(dev); !errors.Is(err, tpm.ErrDevice) || !strings.Contains(err.Error(), want) {
			t.Errorf("OpenDevice(%q): %v", dev, err)
		}
	}
	kek, err := tpm.OpenURI(ctx, "tpm:seal?device=tabrmd:bus_type=system")
	if err == nil {
		err = unwrapOnce(kek)
	}
	if !errors.Is(err, tpm.ErrDevice) || !strings.Contains(err.Error(), `"tabrmd" TCTI`) {
		t.Fatalf("tpm:seal?device=tabrmd:...: %v", err)
	}
}

// The MSSIM relay in front of swtpm speaks the protocol tpm2-tss's own
// mssim TCTI speaks: tpm2-tools works through it (so hsmenv's mssim client,
// tested through it above, speaks what tpm2-tss speaks).
func TestMSSIMRelayWithTPM2Tools(t *testing.T) {
	getcap, err := exec.LookPath("tpm2_getcap")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tpm2-tools is not installed (scripts/deps.sh installs it): %v", err)
		}
		t.Skipf("tpm2-tools is not installed: %v", err)
	}
	sw := tpmtest.Start(t)
	port := sw.MSSIM(t)
	cmd := exec.Command(getcap, "properties-fixed")
	cmd.Env = append(os.Environ(), "TPM2TOOLS_TCTI=mssim:host=127.0.0.1,port="+strconv.Itoa(port))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("TPM2_PT_MANUFACTURER")) {
		t.Fatalf("tpm2_getcap through the relay: %v\n%s", err, out)
	}
	// And hsmenv right after it, on the same relay.
	tctiRoundTrip(t, "mssim:host=127.0.0.1,port="+strconv.Itoa(port))
}

// A real Microsoft-protocol simulator, IBM's tpm_server (not packaged in
// Debian: build it from its sources and set HSMENV_TEST_TPM_SERVER to the
// binary): hsmenv's mssim: client seals, unseals and reads the status.
func TestMSSIMRealSimulator(t *testing.T) {
	bin := os.Getenv("HSMENV_TEST_TPM_SERVER")
	if bin == "" {
		t.Skip("set HSMENV_TEST_TPM_SERVER to an IBM tpm_server binary to run this")
	}
	port := freePortPair(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-port", strconv.Itoa(port))
	cmd.Dir = dir
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	dev := "mssim:host=127.0.0.1,port=" + strconv.Itoa(port)
	d, err := tpm.OpenDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err = d.Status(ctx); err == nil || time.Now().After(deadline) {
			break
		}
	}
	d.Close()
	if err != nil {
		t.Fatalf("tpm_server never answered: %v\n%s", err, log.Bytes())
	}
	st := tctiRoundTrip(t, dev)
	if st.Manufacturer != "IBM" {
		t.Fatalf("manufacturer %q", st.Manufacturer)
	}
}

// freePortPair returns P such that P and P+1 are free on 127.0.0.1.
func freePortPair(t *testing.T) int {
	t.Helper()
	for try := 0; try < 20; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no free loopback port pair")
	return 0
}
