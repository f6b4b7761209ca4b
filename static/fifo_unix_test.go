//go:build unix

package static

import (
	"syscall"
	"testing"
)

// mkfifo makes a named pipe: opening one for reading waits for a writer,
// which a static route must never do.
func mkfifo(t testing.TB, name string) {
	t.Helper()
	if err := syscall.Mkfifo(name, 0o644); err != nil {
		t.Fatal(err)
	}
}
