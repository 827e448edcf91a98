package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// TCTI strings: how tpm2-tools and tpm2-tss name a TPM ($TPM2TOOLS_TCTI,
// --tcti), "NAME" or "NAME:CONF". hsmenv accepts three of them wherever it
// takes a device, and turns each into a device it already speaks to:
//
//	swtpm[:host=H,port=P]  tcp://H:P (default localhost, 2321): swtpm's server
//	                       port, raw TPM 2.0 commands. tpm2-tss also uses the
//	                       control port (P+1) to set the locality; hsmenv
//	                       needs no control channel
//	swtpm:path=SOCKET      unix://SOCKET (swtpm --server type=unixio)
//	mssim[:host=H,port=P]  the Microsoft TPM simulator protocol (the reference
//	                       simulator, IBM's tpm_server): commands framed on P,
//	                       power and NV signals on the platform port P+1
//	device[:PATH]          the character device PATH (default /dev/tpm0, as
//	                       in tpm2-tss)
//
// Other TCTI names (tabrmd, libtpms, cmd, spi-*, ...) are refused with one
// error that lists these.

// tctiSupported lists the accepted forms, for errors.
const tctiSupported = "swtpm:host=H,port=P (or swtpm:path=SOCKET), mssim:host=H,port=P, device:/dev/tpmrm0"

// tctiDefaultPort is tpm2-tss's default port for swtpm and mssim.
const tctiDefaultPort = 2321

// tctiDevice is tpm2-tss's default path for "device".
const tctiDevice = "/dev/tpm0"

// tctiOthers are TCTI names tpm2-tss knows that hsmenv does not speak: a
// bare one (no ':') is taken for a TCTI, not for a relative path.
var tctiOthers = map[string]bool{
	"tabrmd": true, "libtpms": true, "cmd": true, "tbs": true, "pcap": true, "py": true, "null": true,
	"start-sim": true, "spidev": true, "spi-helper": true, "spi-ftdi": true, "spi-ltt2go": true,
	"spi-lt2go": true, "i2c-helper": true, "i2c-ftdi": true,
}

// tctiName returns the TCTI name of dev when dev is a TCTI string: "NAME"
// for a known name, or "NAME:..." where NAME is a TCTI-like word (letters,
// digits, '-', '_', '.') and what follows the ':' does not start with "//"
// (tcp://, unix://). A library file name (libtss2-tcti-swtpm.so.0) counts
// as its short name, as tpm2-tss's loader takes both.
func tctiName(dev string) (name, conf string, ok bool) {
	name, conf, colon := strings.Cut(dev, ":")
	if colon && strings.HasPrefix(conf, "//") {
		return "", "", false
	}
	if name == "" {
		return "", "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", "", false
		}
	}
	short := strings.ToLower(name)
	short = strings.TrimPrefix(short, "libtss2-tcti-")
	short = strings.TrimSuffix(strings.TrimSuffix(short, ".0"), ".so")
	switch {
	case short == "swtpm", short == "mssim", short == "device", tctiOthers[short]:
	case !colon:
		return "", "", false // a relative path
	}
	return short, conf, true
}

// parseTCTI returns the device a TCTI string means: "tcp://H:P",
// "unix://PATH", a device path, or, for mssim, its canonical TCTI string
// "mssim:host=H,port=P". ok is false when dev is not a TCTI string.
func parseTCTI(dev string) (canonical string, ok bool, err error) {
	name, conf, ok := tctiName(dev)
	if !ok {
		return "", false, nil
	}
	fail := func(format string, args ...any) (string, bool, error) {
		return "", true, fmt.Errorf("%w: device %q: %s", ErrDevice, dev, fmt.Sprintf(format, args...))
	}
	switch name {
	case "device":
		p := conf
		if p == "" {
			p = tctiDevice
		}
		if strings.ContainsAny(p, "=,") && !strings.HasPrefix(p, "/") {
			return fail("device: takes the path of a character device (device:/dev/tpmrm0)")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return fail("%v", err)
		}
		return abs, true, nil
	case "swtpm", "mssim":
		kv, err := tctiConf(conf, name == "swtpm")
		if err != nil {
			return fail("%s: %v", name, err)
		}
		if kv.path != "" {
			if !filepath.IsAbs(kv.path) {
				return fail("swtpm: path=%q: want an absolute path", kv.path)
			}
			return "unix://" + filepath.Clean(kv.path), true, nil
		}
		if name == "swtpm" {
			return "tcp://" + net.JoinHostPort(kv.host, strconv.Itoa(kv.port)), true, nil
		}
		if kv.port == 65535 {
			return fail("mssim: port=65535 leaves no platform port (port+1)")
		}
		return "mssim:host=" + kv.host + ",port=" + strconv.Itoa(kv.port), true, nil
	}
	return fail("hsmenv does not speak the %q TCTI; it takes %s, besides tcp://HOST:PORT, unix:///PATH and a device path", name, tctiSupported)
}

// tctiKV is the configuration of a swtpm or mssim TCTI.
type tctiKV struct {
	host, path string
	port       int
}

// tctiConf parses "host=H,port=P" (any order, either may be missing;
// path=SOCKET instead of host and port when withPath), as tpm2-tss does.
func tctiConf(conf string, withPath bool) (tctiKV, error) {
	kv := tctiKV{host: "localhost", port: tctiDefaultPort}
	seen := map[string]bool{}
	for _, f := range strings.Split(conf, ",") {
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return kv, fmt.Errorf("%q: want key=value (host=H,port=P)", f)
		}
		if seen[k] {
			return kv, fmt.Errorf("%s= given twice", k)
		}
		seen[k] = true
		switch k {
		case "host":
			kv.host = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		case "port":
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return kv, fmt.Errorf("port=%q: want 1..65535", v)
			}
			kv.port = p
		case "path":
			if !withPath {
				return kv, errors.New("path= is not supported here; give host=H,port=P")
			}
			kv.path = v
		default:
			keys := "host, port"
			if withPath {
				keys += ", path"
			}
			return kv, fmt.Errorf("unknown key %q (known: %s)", k, keys)
		}
	}
	if kv.path != "" && (seen["host"] || seen["port"]) {
		return kv, errors.New("path= excludes host= and port=")
	}
	return kv, nil
}

// The Microsoft TPM simulator's protocol (TpmTcpProtocol.h in the
// reference implementation): u32 codes on both ports, big-endian.
const (
	msSimPowerOn     = 1
	msSimSendCommand = 8
	msSimNVOn        = 11
	msSimSessionEnd  = 20
)

// dialMSSIM connects to a TPM simulator speaking the Microsoft protocol at
// dev ("mssim:host=H,port=P"): the command port P and the platform port
// P+1, on which it signals power on and NV available (harmless when the
// simulator is already on), as tpm2-tss's mssim TCTI does. TPM2_Startup
// follows in Device.connect.
func dialMSSIM(ctx context.Context, dev string) (*link, error) {
	conf := strings.TrimPrefix(dev, "mssim:")
	kv, err := tctiConf(conf, false)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrDevice, dev, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	cmdAddr := net.JoinHostPort(kv.host, strconv.Itoa(kv.port))
	platAddr := net.JoinHostPort(kv.host, strconv.Itoa(kv.port+1))
	cmdConn, err := d.DialContext(dctx, "tcp", cmdAddr)
	if err != nil {
		return nil, fmt.Errorf("%w %s: command port: %v (is the TPM simulator running there?)", ErrDevice, dev, err)
	}
	platConn, err := d.DialContext(dctx, "tcp", platAddr)
	if err != nil {
		cmdConn.Close()
		return nil, fmt.Errorf("%w %s: platform port: %v (is the TPM simulator running there?)", ErrDevice, dev, err)
	}
	m := &mssimConn{cmd: cmdConn, plat: platConn}
	if dl, ok := dctx.Deadline(); ok {
		platConn.SetDeadline(dl)
	}
	for _, sig := range []uint32{msSimPowerOn, msSimNVOn} {
		if err := m.platform(sig); err != nil {
			m.close()
			if cerr := ctxErr(ctx); cerr != nil {
				return nil, cerr
			}
			return nil, fmt.Errorf("%w %s: platform port %s: %v (not a Microsoft/IBM TPM simulator? swtpm speaks swtpm:host=H,port=P)", ErrDevice, dev, platAddr, err)
		}
	}
	platConn.SetDeadline(time.Time{})
	return &link{
		send:  m.send,
		close: m.close,
		cancel: func() {
			cmdConn.SetDeadline(time.Unix(1, 0))
			platConn.SetDeadline(time.Unix(1, 0))
		},
		stream: true,
	}, nil
}

// mssimConn is one client of the Microsoft TPM simulator protocol.
type mssimConn struct {
	cmd, plat net.Conn
}

// platform sends a platform signal and reads its u32 result, 0 for success.
func (m *mssimConn) platform(sig uint32) error {
	if _, err := m.plat.Write(binary.BigEndian.AppendUint32(nil, sig)); err != nil {
		return fmt.Errorf("signal %d: %w", sig, err)
	}
	var rc [4]byte
	if _, err := io.ReadFull(m.plat, rc[:]); err != nil {
		return fmt.Errorf("signal %d: %w", sig, err)
	}
	if v := binary.BigEndian.Uint32(rc[:]); v != 0 {
		return fmt.Errorf("signal %d answered %d", sig, v)
	}
	return nil
}

// send frames cmd as TPM_SEND_COMMAND (locality 0) and reads the response:
// u32 size, the response, then a u32 the simulator appends (0).
func (m *mssimConn) send(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := setCommandDeadline(ctx, m.cmd); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 9+len(cmd)), msSimSendCommand)
	frame = append(frame, 0) // locality
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(cmd)))
	frame = append(frame, cmd...)
	if _, err := m.cmd.Write(frame); err != nil {
		return nil, fmt.Errorf("sending a command: %w", err)
	}
	var sz [4]byte
	if _, err := io.ReadFull(m.cmd, sz[:]); err != nil {
		return nil, fmt.Errorf("reading a response size: %w", err)
	}
	size := binary.BigEndian.Uint32(sz[:])
	if size < headerLen || size > maxResponse {
		return nil, fmt.Errorf("response size %d out of range [%d, %d]: the peer does not speak the Microsoft TPM simulator protocol (swtpm? use swtpm:host=H,port=P)", size, headerLen, maxResponse)
	}
	rsp := make([]byte, size+4)
	if _, err := io.ReadFull(m.cmd, rsp); err != nil {
		return nil, fmt.Errorf("reading a %d-byte response: %w", size, err)
	}
	return rsp[:size:size], nil
}

// close ends the session on both ports, as a polite client does, and
// closes them.
func (m *mssimConn) close() error {
	end := binary.BigEndian.AppendUint32(nil, msSimSessionEnd)
	for _, c := range []net.Conn{m.cmd, m.plat} {
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(end)
	}
	err := m.cmd.Close()
	if perr := m.plat.Close(); err == nil {
		err = perr
	}
	return err
}
