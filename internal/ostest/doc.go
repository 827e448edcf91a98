// Package ostest makes operating-system objects that tests plant or talk
// through: a FIFO with a reader listening on it (as another user's program
// would be, behind a planted output path), and a pseudo-terminal (for the
// PIN prompt, which reads /dev/tty).
//
// It is imported only from _test.go files. Everything it makes is closed
// when the test ends.
package ostest
