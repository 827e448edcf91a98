package main

import (
	"github.com/hsmenv/hsmenv/internal/keyenv"
	"github.com/hsmenv/hsmenv/resolver"
)

// keyOptions returns what opening a key may need: default module and
// device from the environment, and PINs from the environment or a prompt
// on the terminal (internal/keyenv, shared with age-plugin-hsmenv).
func keyOptions() resolver.Options {
	return keyenv.Options(keyenv.TerminalPrompt)
}
