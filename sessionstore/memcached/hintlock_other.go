//go:build !unix

package memcached

import (
	"errors"
	"io"
	"os"
)

var errLocked = errors.New("locked by another instance")

// lockFile does nothing where flock is missing: instances must not share a
// state directory there.
func lockFile(f *os.File) error { return nil }

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func mapFile(f *os.File) ([]byte, func(), error) {
	data, err := io.ReadAll(f)
	return data, func() {}, err
}
