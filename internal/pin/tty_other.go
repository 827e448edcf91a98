//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package pin

import "os"

// readPIN has no raw terminal mode to use here: there is no prompt.
func readPIN(*os.File, string) ([]byte, error) { return nil, ErrNoTerminal }
