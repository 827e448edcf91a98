package main

import "golang.org/x/sys/unix"

// harden keeps data keys and plaintext out of core dumps: the process is
// made non-dumpable (which also stops non-root ptrace) and its core size
// limit is zero. Failures are ignored: they only lose a defence in depth.
func harden() {
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
}
