package rawaes_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
	"github.com/hsmenv/hsmenv/envelope/rawrsa"
)

// TestKeyFilesBounded: key files were read with os.ReadFile after a size
// check on Stat, which a device (/dev/zero: size 0) or a FIFO passes, so
// hsmenv read forever. Each must now fail promptly with ErrBadKey.
func TestKeyFilesBounded(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A writer that never stops.
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := w.Write(buf); err != nil {
				w.Close()
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	for _, path := range []string{"/dev/zero", fifo} {
		for scheme, open := range map[string]func() error{
			"raw-aes": func() error {
				_, err := rawaes.OpenURI(context.Background(), "raw-aes:namespace=n;name=k?key-file="+path)
				return check(err, rawaes.ErrBadKey)
			},
			"raw-rsa": func() error {
				_, err := rawrsa.OpenURI(context.Background(), "raw-rsa:namespace=n;name=k;padding=oaep-sha256?private-key="+path)
				return check(err, rawrsa.ErrBadKey)
			},
		} {
			done := make(chan error, 1)
			go func() { done <- open() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s key file %s: %v", scheme, path, err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("%s key file %s: still reading after 15 s", scheme, path)
			}
		}
	}
}

// check returns nil when err wraps want, else an error saying what came.
func check(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	if err == nil {
		return errors.New("no error, want " + want.Error())
	}
	return errors.New(err.Error() + ", want " + want.Error())
}

// TestKeyFileText: a key file holding the hex or base64 text of a key is
// refused (it used to pass as a key when its length was 16, 24 or 32: 32
// hex digits made an AES-256 key of text); key-encoding=hex or base64 reads
// it as the key it encodes, key-encoding=raw takes its bytes; raw key
// bytes of each length still open without the attribute.
func TestKeyFileText(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	open := func(path, query string) (envelope.KEK, error) {
		return rawaes.OpenURI(ctx, "raw-aes:namespace=n;name=k?key-file="+path+query)
	}
	for _, n := range []int{16, 24, 32} {
		key := make([]byte, n)
		rand.Read(key)
		raw := write(fmt.Sprint("raw", n), key)
		want, err := open(raw, "")
		if err != nil {
			t.Fatalf("%d raw bytes: %v", n, err)
		}
		edk, err := want.Wrap(ctx, make([]byte, 32), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			enc  string
			text string
			says string
		}{
			{"hex", hex.EncodeToString(key), "hex digits"},
			{"hex", strings.ToUpper(hex.EncodeToString(key)) + "\r\n", "hex digits"},
			{"base64", base64.StdEncoding.EncodeToString(key) + "\n", "base64 characters"},
			{"base64", base64.RawStdEncoding.EncodeToString(key), "base64 characters"},
		} {
			path := write("text", []byte(c.text))
			if _, err := open(path, ""); !errors.Is(err, rawaes.ErrBadKey) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "key-encoding="+c.enc) {
				t.Errorf("%q: %v, want ErrBadKey saying %q and key-encoding=%s", c.text, err, c.says, c.enc)
			}
			kek, err := open(path, "&key-encoding="+c.enc)
			if err != nil {
				t.Errorf("%q with key-encoding=%s: %v", c.text, c.enc, err)
				continue
			}
			if _, err := kek.Unwrap(ctx, edk, nil); err != nil {
				t.Errorf("%q with key-encoding=%s is not the key it encodes: %v", c.text, c.enc, err)
			}
		}
	}
	// key-encoding=raw: the 32 characters are the key.
	text := write("hex16", []byte(hex.EncodeToString(make([]byte, 16))))
	if _, err := open(text, "&key-encoding=raw"); err != nil {
		t.Errorf("key-encoding=raw: %v", err)
	}
	for _, q := range []string{"&key-encoding=hex&key-encoding=raw", "&key-encoding=b64"} {
		if _, err := open(text, q); err == nil {
			t.Errorf("%s accepted", q)
		}
	}
	if _, err := open(write("nothex", []byte("zz"+strings.Repeat("0", 30))), "&key-encoding=hex"); !errors.Is(err, rawaes.ErrBadKey) {
		t.Errorf("key-encoding=hex on non-hex text: %v", err)
	}
}
