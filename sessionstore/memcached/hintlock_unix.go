//go:build unix

package memcached

import (
	"errors"
	"os"
	"syscall"
)

// errLocked says that another running instance holds a hint file.
var errLocked = errors.New("locked by another instance")

// lockFile takes an exclusive flock on f without waiting: an instance
// holds its hint files locked for as long as it runs (the kernel drops the
// lock with the process, however it ends), which is how another instance
// sharing the state directory tells a live instance's files from orphans.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}

// sameFile reports whether f is still the file at path: a file locked
// after another instance removed or replaced it is not.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// mapFile maps f read-only: an adopted hint file of up to HintFileMax is
// read through the page cache, never copied onto the heap, which the
// memory budget (membudget) counts.
func mapFile(f *os.File) (data []byte, unmap func(), err error) {
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, func() {}, nil
	}
	data, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() { syscall.Munmap(data) }, nil
}
