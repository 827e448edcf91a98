package main

import (
	"errors"
	"io"
	"os"

	"golang.org/x/term"
)

// errTerminal refuses binary output to a terminal, as age does: it could
// garble the screen or, through escape sequences, drive the terminal.
var errTerminal = usageError{errors.New("refusing to write binary output to a terminal: use -o FILE, or -o - to force")}

// stdoutIsTerminal is whether standard output is a terminal.
var stdoutIsTerminal = term.IsTerminal(int(os.Stdout.Fd()))

// unaskedTerminal reports whether output to outTo ("" when -o was not
// given) would go to a terminal without having been asked for with -o -.
func unaskedTerminal(outTo string) bool {
	return outTo == "" && stdoutIsTerminal
}

// textOnly passes text to a terminal and refuses the first write that holds
// a byte text does not (a control character other than tab, newline and
// carriage return): decrypted text may be shown,
// binary plaintext is not, and no escape sequence reaches the terminal.
type textOnly struct{ w io.Writer }

func (t textOnly) Write(p []byte) (int, error) {
	if binaryBytes(p) {
		return 0, errTerminal
	}
	return t.w.Write(p)
}

// binaryBytes reports whether p holds a byte that is not text.
func binaryBytes(p []byte) bool {
	for _, b := range p {
		if (b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f {
			return true
		}
	}
	return false
}
