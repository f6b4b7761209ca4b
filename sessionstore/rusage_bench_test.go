//go:build linux

package sessionstore

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// reportRusage starts counting this process's CPU time, context switches
// and read and write system calls (every thread; not the memcached
// servers the benchmark started) and returns what reports them per op, as
// the bench runner does per request: cpu-ns/op, vcsw/op (voluntary
// switches: a thread that blocked, mostly for want of a goroutine to run),
// ivcsw/op (preempted) and rwsys/op (read-like and write-like system
// calls, /proc/self/io). Call it after the set-up, defer what it returns.
func reportRusage(b *testing.B) func() {
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	rw := readWriteCalls()
	return func() {
		var after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		n := float64(b.N)
		cpu := func(r *syscall.Rusage) float64 {
			return float64(r.Utime.Nano() + r.Stime.Nano())
		}
		b.ReportMetric((cpu(&after)-cpu(&before))/n, "cpu-ns/op")
		b.ReportMetric(float64(after.Nvcsw-before.Nvcsw)/n, "vcsw/op")
		b.ReportMetric(float64(after.Nivcsw-before.Nivcsw)/n, "ivcsw/op")
		b.ReportMetric(float64(readWriteCalls()-rw)/n, "rwsys/op")
	}
}

// readWriteCalls is the process's read and write system calls so far.
func readWriteCalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range bytes.Split(b, []byte("\n")) {
		for _, f := range []string{"syscr: ", "syscw: "} {
			if v, ok := bytes.CutPrefix(line, []byte(f)); ok {
				x, _ := strconv.ParseInt(string(v), 10, 64)
				n += x
			}
		}
	}
	return n
}
