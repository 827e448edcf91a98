package tpmtest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// EKCA is the throw-away local CA (swtpm_localca) that signed an swtpm's
// EK certificates: a self-signed root and an intermediate (the issuer of
// the EK certificates), both PEM.
type EKCA struct {
	// Root is the root CA's certificate (swtpm-localca-rootca-cert.pem):
	// the trust anchor, what tpm:ek=...;ca= takes.
	Root string
	// Intermediate is the signing CA's certificate (issuercert.pem), signed
	// by Root; it issued the EK certificates. A verifier needs it beside the
	// EK certificate.
	Intermediate string
}

// NV indexes of the EK certificates (TCG EK Credential Profile).
const (
	NVRSAEKCert     = 0x01c00002 // RSA-2048 EK certificate (swtpm_setup)
	NVECCP256EKCert = 0x01c0000a // ECC P-256 EK certificate (added here)
	NVECCP384EKCert = 0x01c00016 // ECC P-384 EK certificate (swtpm_setup 0.7)
)

// StartWithEKCert starts an swtpm (on TCP, like Start) whose state was
// made by `swtpm_setup --tpm2 --create-ek-cert` against a local CA of its
// own in the test's temporary directory, and returns it with that CA.
//
// swtpm_setup (0.7) creates the RSA-2048 EK (persistent 0x81010001) and an
// ECC EK on NIST P-384 (0x81010016) and stores their certificates at NV
// 0x01c00002 and 0x01c00016, NVRAM not locked. Since the TCG ECC EK
// template hsmenv uses is P-256, StartWithEKCert then has the same CA sign
// a certificate for the P-256 EK (swtpm_localca --type ek) and stores it
// at 0x01c0000a with the attributes of swtpm_setup's RSA one, under the
// platform hierarchy (empty authorization).
//
// It needs swtpm_setup and swtpm_localca (Debian: swtpm-tools, which pulls
// certtool from gnutls-bin); without them the test fails under $CI and is
// skipped otherwise.
func StartWithEKCert(t testing.TB) (*SWTPM, EKCA) {
	t.Helper()
	setup := requireTool(t, "swtpm_setup")
	localca := requireTool(t, "swtpm_localca", "/usr/share/swtpm/swtpm-localca")
	requireTool(t, "certtool")
	s := newSWTPM(t)
	dir := filepath.Dir(s.StateDir)
	ca, cfg, opts := filepath.Join(dir, "localca"), filepath.Join(dir, "swtpm-localca.conf"), filepath.Join(dir, "swtpm-localca.options")
	if err := os.Mkdir(ca, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		cfg: "statedir = " + ca + "\n" +
			"signingkey = " + filepath.Join(ca, "signkey.pem") + "\n" +
			"issuercert = " + filepath.Join(ca, "issuercert.pem") + "\n" +
			"certserial = " + filepath.Join(ca, "certserial") + "\n",
		opts: "--platform-manufacturer hsmenv-test\n--platform-version 2.1\n--platform-model swtpm\n",
		filepath.Join(dir, "swtpm_setup.conf"): "create_certs_tool = " + localca + "\n" +
			"create_certs_tool_config = " + cfg + "\n" +
			"create_certs_tool_options = " + opts + "\n" +
			"active_pcr_banks = sha256\n",
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(setup, "--tpm2", "--tpmstate", s.StateDir,
		"--config", filepath.Join(dir, "swtpm_setup.conf"),
		"--create-ek-cert", "--pcr-banks", "sha256")
	// swtpm_setup looks for config files under $XDG_CONFIG_HOME and $HOME
	// when --config is missing; keep it away from the user's anyway.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("swtpm_setup --create-ek-cert: %v\n%s", err, out)
	}
	e := EKCA{Root: filepath.Join(ca, "swtpm-localca-rootca-cert.pem"), Intermediate: filepath.Join(ca, "issuercert.pem")}
	for _, f := range []string{e.Root, e.Intermediate} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("swtpm_localca made no %s: %v", filepath.Base(f), err)
		}
	}
	var err error
	for try := 0; try < 10; try++ {
		if s.Port, err = freePortPair(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting swtpm: %v", err)
	}
	t.Cleanup(s.Stop)
	if err := s.addP256EKCert(localca, cfg, opts); err != nil {
		t.Fatalf("adding a P-256 EK certificate: %v", err)
	}
	return s, e
}

// requireTool returns the path of the first of names found (a bare name
// in $PATH, or an absolute path), failing under $CI and skipping otherwise
// when none is.
func requireTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed; install swtpm-tools (Debian: apt-get install swtpm swtpm-tools) or run scripts/deps.sh", names[0])
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// addP256EKCert has the local CA sign a certificate for the TPM's ECC
// P-256 EK (the TCG template) and writes it to NV 0x01c0000a.
func (s *SWTPM) addP256EKCert(localca, cfg, opts string) error {
	tp, err := s.Open()
	if err != nil {
		return err
	}
	defer tp.Close()
	ek, err := (tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.ECCEKTemplate),
	}).Execute(tp)
	if err != nil {
		return fmt.Errorf("TPM2_CreatePrimary (ECC EK): %w", err)
	}
	(tpm2.FlushContext{FlushHandle: ek.ObjectHandle}).Execute(tp)
	pub, err := ek.OutPublic.Contents()
	if err != nil {
		return err
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return err
	}
	out, err := os.MkdirTemp(filepath.Dir(s.StateDir), "ekcert-")
	if err != nil {
		return err
	}
	// The arguments swtpm_setup 0.7 passes for its own EK certificates.
	cmd := exec.Command(localca, "--type", "ek",
		"--ek", "x="+hex.EncodeToString(point.X.Buffer)+",y="+hex.EncodeToString(point.Y.Buffer),
		"--dir", out, "--tpm-spec-family", "2.0", "--tpm-spec-level", "0", "--tpm-spec-revision", "164",
		"--tpm-manufacturer", "id:00001014", "--tpm-model", "swtpm", "--tpm-version", "id:20191023",
		"--tpm2", "--configfile", cfg, "--optsfile", opts)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("swtpm_localca: %v\n%s", err, b)
	}
	der, err := os.ReadFile(filepath.Join(out, "ek.cert"))
	if err != nil {
		return err
	}
	return writeNV(tp, NVECCP256EKCert, der)
}

// WriteNV stores data at an NV index of the swtpm, as swtpm_setup stores
// EK certificates (platform hierarchy, empty authorization; attributes
// ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate, not
// write-locked), replacing the index if it exists. It uses a connection of
// its own (see Open: no other may be open).
func (s *SWTPM) WriteNV(index uint32, data []byte) error {
	tp, err := s.Open()
	if err != nil {
		return err
	}
	defer tp.Close()
	return writeNV(tp, index, data)
}

func writeNV(tp transport.TPM, index uint32, data []byte) error {
	h := tpm2.TPMHandle(index)
	platform := tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	if rp, err := (tpm2.NVReadPublic{NVIndex: h}).Execute(tp); err == nil {
		_, err = (tpm2.NVUndefineSpace{AuthHandle: platform, NVIndex: tpm2.NamedHandle{Handle: h, Name: rp.NVName}}).Execute(tp)
		if err != nil {
			return fmt.Errorf("TPM2_NV_UndefineSpace %#x: %w", index, err)
		}
	}
	_, err := (tpm2.NVDefineSpace{
		AuthHandle: platform,
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: h,
			NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{PPWrite: true, WriteDefine: true, PPRead: true, OwnerRead: true, AuthRead: true,
				NoDA: true, PlatformCreate: true, NT: tpm2.TPMNTOrdinary},
			DataSize: uint16(len(data)),
		}),
	}).Execute(tp)
	if err != nil {
		return fmt.Errorf("TPM2_NV_DefineSpace %#x: %w", index, err)
	}
	for off := 0; off < len(data); {
		n := min(len(data)-off, 512)
		rp, err := (tpm2.NVReadPublic{NVIndex: h}).Execute(tp)
		if err != nil {
			return fmt.Errorf("TPM2_NV_ReadPublic %#x: %w", index, err)
		}
		_, err = (tpm2.NVWrite{
			AuthHandle: platform,
			NVIndex:    tpm2.NamedHandle{Handle: h, Name: rp.NVName},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data[off : off+n]},
			Offset:     uint16(off),
		}).Execute(tp)
		if err != nil {
			return fmt.Errorf("TPM2_NV_Write %#x: %w", index, err)
		}
		off += n
	}
	return nil
}

// ReadNV reads an NV index of the swtpm whole over a connection of
// its own (see Open: no other may be open), for comparing what hsmenv
// exports with what swtpm_setup stored.
func (s *SWTPM) ReadNV(index uint32) ([]byte, error) {
	tp, err := s.Open()
	if err != nil {
		return nil, err
	}
	defer tp.Close()
	h := tpm2.TPMHandle(index)
	rp, err := (tpm2.NVReadPublic{NVIndex: h}).Execute(tp)
	if err != nil {
		return nil, fmt.Errorf("TPM2_NV_ReadPublic %#x: %w", index, err)
	}
	pub, err := rp.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	var data []byte
	for off := 0; off < int(pub.DataSize); {
		n := min(int(pub.DataSize)-off, 512)
		rsp, err := (tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: h, Name: rp.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: h, Name: rp.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}).Execute(tp)
		if err != nil {
			return nil, fmt.Errorf("TPM2_NV_Read %#x: %w", index, err)
		}
		data = append(data, rsp.Data.Buffer...)
		off += n
	}
	if len(data) == 0 {
		return nil, errors.New("empty NV index")
	}
	return data, nil
}

// ChainPEM returns certPEM (an EK certificate, PEM) followed by the
// intermediate's PEM: the file tpm:ek=FILE;ca=ROOT verifies.
func (e EKCA) ChainPEM(certPEM []byte) ([]byte, error) {
	inter, err := os.ReadFile(e.Intermediate)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(string(certPEM), "\n") {
		certPEM = append(certPEM, '\n')
	}
	return append(append([]byte(nil), certPEM...), inter...), nil
}
