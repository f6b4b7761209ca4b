package testutil

import (
	"runtime"
	"syscall"
	"time"
)

// OnThreadCPU runs f locked to one OS thread and returns the CPU time
// that thread spent in it. A bound on it proves a cost of f itself: wall
// time on a loaded machine (load average 10 to 50 on two cores) is
// mostly time the thread waited for a core, which no bound can allow for.
func OnThreadCPU(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadCPU()
	f()
	return threadCPU() - before
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		panic(err) // Linux has had RUSAGE_THREAD since 2.6.26
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
