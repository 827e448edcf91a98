package kmsplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	kmsapi "k8s.io/kms/apis/v2"
	"k8s.io/kms/pkg/service"
)

// ErrSocket reports a socket path the plugin cannot listen on.
var ErrSocket = errors.New("kms-plugin socket")

// gracePeriod bounds the wait for calls in flight after ctx is done.
const gracePeriod = 10 * time.Second

// SocketPath returns the path of a --listen value, unix:///PATH.
func SocketPath(listen string) (string, error) {
	const prefix = "unix://"
	if len(listen) <= len(prefix) || listen[:len(prefix)] != prefix {
		return "", fmt.Errorf("%w: --listen %q: give unix:///PATH.sock", ErrSocket, listen)
	}
	return listen[len(prefix):], nil
}

// Serve serves the KMS v2 API on a unix socket at path until ctx is done,
// then stops gracefully (calls in flight finish, for up to 10 s) and
// removes the socket. The socket is made with mode 0600 and put in place
// by rename, so it is never reachable with looser permissions; a socket
// left at path by a crashed plugin (no one accepts on it) is replaced, a
// live one or any other file is refused. ready, if not nil, is called once
// the socket accepts connections.
func (p *Plugin) Serve(ctx context.Context, path string, ready func()) error {
	ln, err := listen(path)
	if err != nil {
		return err
	}
	ours, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return fmt.Errorf("%w: %v", ErrSocket, err)
	}
	defer removeIfSame(path, ours)

	gs := grpc.NewServer()
	kmsapi.RegisterKeyManagementServiceServer(gs, service.NewGRPCService(path, p.timeout, p))
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ln) }()
	if ready != nil {
		ready()
	}
	select {
	case err := <-done:
		return fmt.Errorf("%w: serving on %s: %v", ErrSocket, path, err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(gracePeriod):
		gs.Stop()
	}
	return nil
}

// listen binds a unix socket at path with mode 0600: made under a
// temporary name in the same directory with umask 0177, then renamed over
// path, after checking that what is at path (if anything) is a socket no
// one accepts on.
func listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%w: %s exists and is not a socket (%s); not replaced", ErrSocket, path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: another process is listening on %s", ErrSocket, path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %v", ErrSocket, err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", tmp)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSocket, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // the name changes: removeIfSame removes it
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%w: %v", ErrSocket, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("%w: %v", ErrSocket, err)
	}
	return ln, nil
}

// removeIfSame removes path if it is still the socket fi describes (not
// one another plugin put there since).
func removeIfSame(path string, fi os.FileInfo) {
	if now, err := os.Lstat(path); err == nil && os.SameFile(now, fi) {
		os.Remove(path)
	}
}
