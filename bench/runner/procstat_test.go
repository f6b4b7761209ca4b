package main

import (
	"math"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' of its own: fields are counted
	// from the last ')'.
	const stat = "4242 (nginx: a) b) S 4200 4200 4200 0 -1 4194624 1200 0 0 0 1234 567 0 0 20 0 1 0 5000 10000000 300 18446744073709551615\n"
	s, err := parseStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (statFields{PPid: 4200, PGrp: 4200, UTime: 1234, STime: 567}); s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	for _, bad := range []string{"", "4242 nginx S 1 2", "4242 (x) S 1 2 3", "4242 (x) S 1 x 3 4 5 6 7 8 9 10 11 12 13"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestParseCtxSwitchesAndIO(t *testing.T) {
	const status = "Name:\tsessionproxy\nThreads:\t7\nvoluntary_ctxt_switches:\t1500\nnonvoluntary_ctxt_switches:\t25\n"
	if got := parseCtxSwitches([]byte(status)); got != 1525 {
		t.Errorf("ctx switches: got %d, want 1525", got)
	}
	const io = "rchar: 100\nwchar: 200\nsyscr: 4000\nsyscw: 3000\nread_bytes: 0\n"
	if got := parseIO([]byte(io)); got != 7000 {
		t.Errorf("syscr+syscw: got %d, want 7000", got)
	}
}

func TestParsePerfCSV(t *testing.T) {
	n, err := parsePerfCSV([]byte("\n110537,,raw_syscalls:sys_enter,790133131,100.00,,\n"))
	if err != nil || n != 110537 {
		t.Fatalf("got %d, %v; want 110537", n, err)
	}
	if _, err := parsePerfCSV([]byte("<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n")); err == nil {
		t.Error("<not counted> gave no error")
	}
	if _, err := parsePerfCSV([]byte("Error: no permission\n")); err == nil {
		t.Error("no count gave no error")
	}
}

func TestPerRequestMaths(t *testing.T) {
	// 250 ticks (2.5 s of CPU) over 100,000 requests is 25 µs a request.
	if got := perRequestUS(250, 100_000); got != 25 {
		t.Errorf("perRequestUS: got %v, want 25", got)
	}
	if got := perRequestUS(250, 0); got != 0 {
		t.Errorf("perRequestUS with no requests: got %v, want 0", got)
	}
	if got := ratio(30, 20); got != 1.5 {
		t.Errorf("ratio: got %v, want 1.5", got)
	}
	if got := ratio(30, 0); got != 0 {
		t.Errorf("ratio over 0: got %v, want 0", got)
	}
	a := []result{{costs: costs{CPU: 20}}, {costs: costs{CPU: 10}}, {costs: costs{CPU: 40}}}
	b := []result{{costs: costs{CPU: 22}}, {costs: costs{CPU: 9}}}
	got := pairedRatios(a, b, func(r result) float64 { return r.CPU })
	if len(got) != 2 || math.Abs(got[0]-1.1) > 1e-9 || math.Abs(got[1]-0.9) > 1e-9 {
		t.Errorf("pairedRatios: got %v, want [1.1 0.9]", got)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3: got %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4: got %v, want 2.5", got)
	}
	if got := median(nil); got != 0 {
		t.Errorf("median of none: got %v", got)
	}
	s := abSummary([]result{{RPS: 100, P99: 2000, costs: costs{CPU: 30, Sys: 6}}, {RPS: 300, P99: 4000, costs: costs{CPU: 10, Sys: 5}}, {RPS: 200, P99: 3000, costs: costs{CPU: 20, Sys: 7}, Errors: 2}})
	if s.RPS != 200 || s.CPU != 20 || s.Sys != 6 || s.P99 != 3 || s.Errors != 2 {
		t.Errorf("abSummary: got %+v", s)
	}
}

// TestReadCountersOwnProcess reads this test's own counters from the real
// /proc: spinning for 300 ms must show in utime+stime, and the process
// group lookup must find this process.
func TestReadCountersOwnProcess(t *testing.T) {
	pid := os.Getpid()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Fatal(err) // the runner's measure: a skip would hide it where it runs
		}
		t.Skip("no /proc")
	}
	st, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range groupPids([]int{st.PGrp}) {
		found = found || p == pid
	}
	if !found {
		t.Fatalf("groupPids(%d) does not list this process %d", st.PGrp, pid)
	}
	before := readCounters([]int{pid})
	// Spin until getrusage says this process used 200 ms more CPU (however
	// long that takes on a shared machine); /proc must see most of it.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for start := cpu(); cpu()-start < 200*time.Millisecond; {
	}
	d := readCounters([]int{pid}).sub(before)
	if d.Ticks < 15 || d.Ticks > 40 {
		t.Errorf("200 ms of CPU read as %d ticks of 10 ms", d.Ticks)
	}
	if before.Ctx <= 0 {
		t.Errorf("no context switches read over the threads: %+v", before)
	}
}

// TestKeepSyscalls: the count perf made in a warm-up run is what the
// rounds without perf report, per front end and path; a front end never
// counted by perf keeps its /proc lower bound.
func TestKeepSyscalls(t *testing.T) {
	e := &env{}
	warm := result{costs: costs{Sys: 6.5, SysPerf: true}}
	e.keepSyscalls("127.0.0.1:1", "/plain", &warm)
	round := result{costs: costs{CPU: 20, Sys: 4}} // syscr+syscw of the round
	e.keepSyscalls("127.0.0.1:1", "/plain", &round)
	if round.Sys != 6.5 || !round.SysPerf || round.CPU != 20 {
		t.Errorf("round after a perf warm-up: got %+v", round.costs)
	}
	other := result{costs: costs{Sys: 4}}
	e.keepSyscalls("127.0.0.1:1", "/write", &other)
	if other.Sys != 4 || other.SysPerf {
		t.Errorf("another path took the plain path's count: %+v", other.costs)
	}
}

// TestABErratic: a side with more than 1% failed requests is flagged in
// the A/B table, where its CPU per request would look cheaper.
func TestABErratic(t *testing.T) {
	ok := []result{{Requests: 10000, Errors: 50, costs: costs{CPU: 30}}, {Requests: 10000, Errors: 0, costs: costs{CPU: 31}}}
	bad := []result{{Requests: 10000, Errors: 900, costs: costs{CPU: 20}}, {Requests: 10000, Errors: 0, costs: costs{CPU: 21}}}
	if abSummary(ok).erratic() {
		t.Error("0.25% errors flagged")
	}
	if !abSummary(bad).erratic() {
		t.Error("4.5% errors not flagged")
	}
	md := abMarkdown("a", "b", []abScenario{abAll[0], abAll[2]}, map[string][]result{"A|plain": ok, "B|plain": ok, "A|write": ok, "B|write": bad})
	if !strings.Contains(md, "| write (session write, sync, 2 replicas) ⚠ |") || strings.Contains(md, "no session work) ⚠") {
		t.Errorf("flags wrong:\n%s", md)
	}
}
