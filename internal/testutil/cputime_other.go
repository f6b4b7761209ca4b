//go:build !linux

package testutil

import "time"

// OnThreadCPU runs f and returns the time it took. Without a per-thread
// CPU clock (Linux's RUSAGE_THREAD) this is wall time, which a loaded
// machine inflates.
func OnThreadCPU(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}
