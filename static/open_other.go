//go:build !unix

package static

// openNonblock: no such flag here.
const openNonblock = 0
