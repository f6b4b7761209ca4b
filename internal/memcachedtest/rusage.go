//go:build unix

package memcachedtest

import (
	"bytes"
	"os"
	"runtime/metrics"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchTimeout is the memcached timeout of benchmarks against real
// memcached: on a machine loaded by other work the default 100ms marks a
// node down now and then, after which each op writes to one replica only
// and costs half, which no A/B can tell from a lever.
const BenchTimeout = 2 * time.Second

// ReportRusage starts counting this process's CPU time, context switches
// and read and write system calls (every thread; not the memcached
// servers the benchmark started) and returns what reports them per op, as
// the bench runner does per request: cpu-ns/op, vcsw/op (voluntary
// switches: a thread that blocked, mostly for want of a goroutine to run),
// ivcsw/op (preempted), rwsys/op (read-like and write-like system calls,
// /proc/self/io), sched/op (goroutines made to run after waiting
// runnable: wake-ups, new goroutines and yields; the runtime samples one
// in 8, counted here times 8) and mc-cpu-ns/op (the memcached servers
// nodes, in 10ms ticks: coarse unless the run is long). Call it after
// the set-up, defer what it returns.
func ReportRusage(b *testing.B, nodes ...*Server) func() {
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	rw, sched, mc := readWriteCalls(), schedRuns(), nodesCPU(nodes)
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
		b.ReportMetric(float64(schedRuns()-sched)*8/n, "sched/op")
		b.ReportMetric(float64(nodesCPU(nodes)-mc)/n, "mc-cpu-ns/op")
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

// schedRuns is the runtime's sampled count of goroutines run after
// waiting runnable.
func schedRuns() uint64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	var n uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		n += c
	}
	return n
}

// nodesCPU is the CPU time of nodes so far, in ns (utime+stime).
func nodesCPU(nodes []*Server) int64 {
	var ns int64
	for _, srv := range nodes {
		b, err := os.ReadFile("/proc/" + srv.PID() + "/stat")
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := bytes.Fields(b[i+1:])
			if len(f) > 13 {
				u, _ := strconv.ParseInt(string(f[11]), 10, 64)
				s, _ := strconv.ParseInt(string(f[12]), 10, 64)
				ns += (u + s) * 10_000_000 // USER_HZ 100
			}
		}
	}
	return ns
}
