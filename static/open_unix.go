//go:build unix

package static

import "syscall"

// openNonblock keeps an open of a FIFO swapped in for a file from waiting
// for a writer; for a regular file it changes nothing.
const openNonblock = syscall.O_NONBLOCK
