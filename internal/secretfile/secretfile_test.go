package secretfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestRegularFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(p, []byte("1234\n"), 0o600)
	b, err := Read(p, 16)
	if err != nil || string(b) != "1234\n" {
		t.Fatalf("Read = %q, %v", b, err)
	}
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, bytes.Repeat([]byte{'x'}, 17), 0o600)
	if _, err := Read(big, 16); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("17-byte file with limit 16: %v, want ErrTooLarge", err)
	}
	if _, err := Read(filepath.Dir(big), 16); !errors.Is(err, ErrNotFile) {
		t.Fatalf("directory: %v, want ErrNotFile", err)
	}
}

func TestDevicesRefused(t *testing.T) {
	for _, dev := range []string{"/dev/zero", "/dev/urandom", "/dev/null"} {
		done := make(chan error, 1)
		go func() { _, err := Read(dev, 1024); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotFile) {
				t.Errorf("%s: %v, want ErrNotFile", dev, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Read did not return", dev)
		}
	}
}

func fifo(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFIFOWithoutWriterDoesNotBlock(t *testing.T) {
	b, err := Read(fifo(t), 1024)
	if err != nil || len(b) != 0 {
		t.Fatalf("FIFO without writer: %q, %v; want empty", b, err)
	}
}

func TestFIFOEndlessWriterBounded(t *testing.T) {
	p := fifo(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		chunk := bytes.Repeat([]byte{'a'}, 4096)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the writer open its end
	if _, err := Read(p, 1024); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless FIFO: %v, want ErrTooLarge", err)
	}
}

func TestFIFOSilentWriterTimesOut(t *testing.T) {
	old := PipeTimeout
	PipeTimeout = 200 * time.Millisecond
	defer func() { PipeTimeout = old }()
	p := fifo(t)
	// Connect a writer that never writes nor closes: a writer's open needs
	// a reader, so a throw-away reader is opened first and closed after.
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan error, 1)
	go func() { _, err := Read(p, 1024); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("silent FIFO: %v, want ErrTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read of a silent FIFO did not return")
	}
}
