//go:build !linux

package outfile

import (
	"errors"
	"os"
)

// openUnnamed is not available here: named temporary files are used.
func openUnnamed(string) (*os.File, bool) { return nil, false }

func linkUnnamed(*os.File, string) error { return errors.New("unreachable") }

func linkUnnamedTemp(*os.File, string) (string, error) { return "", errors.New("unreachable") }

// renameat2NoReplace is not available here: the caller links instead.
func renameat2NoReplace(string, string) error { return errors.ErrUnsupported }
