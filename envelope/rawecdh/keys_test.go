package rawecdh_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/hsmenv/hsmenv/envelope/rawecdh"
)

// Test keys of the MPL, AwsCryptographyPrimitives/test/TestECDH.dfy
// (commit cdd05b14f02a): PKCS#8 private keys, their DER SPKI public keys and
// the compressed forms the MPL expects. "THESE ARE TESTING RESOURCES".
var mplKeys = []struct {
	curve                  string
	private, public, compr string
}{
	{"p256", `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgw+7YSKEOEAh8/DFZ
22oSTm/D3jo4nH5tN48IUp0WjyuhRANCAASnUgx7SrlHhPIn3McZfc3cEIs8+XFf
7JvhcuV1wWELGZ8AjuwnKjE0ielEwSY5HYzWCF773FvJaWGYGYGhSba8
-----END PRIVATE KEY-----
`,
		"3059301306072a8648ce3d020106082a8648ce3d03010703420004a7520c7b4ab94784f227dcc7197dcddc108b3cf9715fec9be172e575c1610b199f008eec272a313489e944c126391d8cd6085efbdc5bc96961981981a149b6bc",
		"02a7520c7b4ab94784f227dcc7197dcddc108b3cf9715fec9be172e575c1610b19"},
	{"p384", `-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAE/GcrZaGaZKKnWsbi
6OiMB8HlhoyF1CQeaZHFdp1VFu7mSM2mUrSolCfpYRB50aahZANiAAQayPW6B3aV
GKWFBbDH3SeuMhiY2GIPG+tBEHmMZ3QUaG6qNnQxXS+QpR95IWyQWZjInyDk2upe
b1TivP0UYay+dIS8MrBFM7oLBsJIqxGiRQ1EPFIpBLv4mmteOma5qt8=
-----END PRIVATE KEY-----
`,
		"3076301006072a8648ce3d020106052b81040022036200041ac8f5ba07769518a58505b0c7dd27ae321898d8620f1beb4110798c677414686eaa3674315d2f90a51f79216c905998c89f20e4daea5e6f54e2bcfd1461acbe7484bc32b04533ba0b06c248ab11a2450d443c522904bbf89a6b5e3a66b9aadf",
		"031ac8f5ba07769518a58505b0c7dd27ae321898d8620f1beb4110798c677414686eaa3674315d2f90a51f79216c905998"},
	{"p521", `-----BEGIN PRIVATE KEY-----
MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIB3azBoPIuF7SY3Z7g
xK/dEnSqoqBsHaoiI78Sfs9Ydxsd/3Ref4xZC0v58EwZjKxIMWwcqxSNzg8yLOAV
oaRbwryhgYkDgYYABAHeMnMkadh2nketUTcDvKE4WCcdTdIFKaDqwtMIbq/y5N4E
I77OxYwKP7IdGBC9n/GkcNIWx6R91zc3AId9a7VrOQF9+HitnblByL1u3N6kWhUf
C3ury11T8dkNW+LbVkmX8B3+s6VaEQWKa+SYBemPV05aJhU0xaaF/MhsLGwKLpPp
Qg==
-----END PRIVATE KEY-----
`,
		"30819b301006072a8648ce3d020106052b81040023038186000401de32732469d8769e47ad513703bca13858271d4dd20529a0eac2d3086eaff2e4de0423becec58c0a3fb21d1810bd9ff1a470d216c7a47dd7373700877d6bb56b39017df878ad9db941c8bd6edcdea45a151f0b7babcb5d53f1d90d5be2db564997f01dfeb3a55a11058a6be49805e98f574e5a261534c5a685fcc86c2c6c0a2e93e942",
		"0201de32732469d8769e47ad513703bca13858271d4dd20529a0eac2d3086eaff2e4de0423becec58c0a3fb21d1810bd9ff1a470d216c7a47dd7373700877d6bb56b39"},
}

// katRecipientPEM is keys.json "ecc-256-private" recipient-material (ESDK
// TestVectors/dafny/TestVectors/test/keys.json); its sender-material is
// mplKeys[0].
const katRecipientPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYvB/1CVSgfQDrE6A
Dz7pdgxcOb+AHnsaI4LQMY6s8JChRANCAARYxf/AeERu2Z3VtDokplDs/atuGIbW
7IGhknbK2MP+NV/mbcaxl8Xki9FegBslxCbM66KaoOZR1bCxPpGub2aS
-----END PRIVATE KEY-----
`

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCurve(t testing.TB, name string) ecdh.Curve {
	t.Helper()
	c, err := rawecdh.Curve(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func genKey(t testing.TB, c ecdh.Curve) *ecdh.PrivateKey {
	t.Helper()
	k, err := c.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func parsePriv(t testing.TB, s string) *ecdh.PrivateKey {
	t.Helper()
	k, err := rawecdh.ParsePrivateKeyPEM([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func privPEM(t testing.TB, k *ecdh.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pubPEM(t testing.TB, k *ecdh.PublicKey) []byte {
	t.Helper()
	b, err := rawecdh.MarshalPublicKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes b to a new file in a test directory and returns its path.
func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustECDSA returns a P-256 ECDH key as an ECDSA key (for SEC 1 encoding).
func mustECDSA(t testing.TB, k *ecdh.PrivateKey) *ecdsa.PrivateKey {
	t.Helper()
	e, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return e
}
