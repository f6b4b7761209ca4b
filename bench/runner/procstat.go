package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// What a process group costs per request (issue #30): CPU time (utime +
// stime from /proc/<pid>/stat), context switches (voluntary and
// nonvoluntary, summed over /proc/<pid>/task/*/status) and system calls
// (perf stat -e raw_syscalls:sys_enter over the measured window, or, where
// perf cannot count, syscr + syscw from /proc/<pid>/io: only the calls
// that read or write, a lower bound). A group is the processes of one
// process group: every process the runner starts leads its own
// (spawnLog's Setpgid), and nginx's and HAProxy's workers stay in their
// master's, so a group is "the proxy's own processes".

var perfMode = flag.String("perf", "auto", "count system calls with perf stat (auto: where it works; off: /proc/<pid>/io syscr+syscw, a lower bound)")

// userHZ is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100
// on every Linux architecture the runner is used on).
const userHZ = 100

// procCounters are cumulative counters of a set of processes at one
// instant.
type procCounters struct {
	Ticks int64 // utime + stime, in 1/userHZ s
	Ctx   int64 // voluntary + nonvoluntary context switches, all threads
	RW    int64 // syscr + syscw: read-like and write-like system calls
}

func (c procCounters) sub(d procCounters) procCounters {
	return procCounters{c.Ticks - d.Ticks, c.Ctx - d.Ctx, c.RW - d.RW}
}

// statFields is what the runner reads from /proc/<pid>/stat.
type statFields struct {
	PPid, PGrp   int
	UTime, STime int64
}

// parseStat reads /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so the fields
// are counted from the last ')'.
func parseStat(b []byte) (statFields, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return statFields{}, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return statFields{}, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	var s statFields
	var errs [4]error
	s.PPid, errs[0] = strconv.Atoi(f[1])               // field 4
	s.PGrp, errs[1] = strconv.Atoi(f[2])               // field 5
	s.UTime, errs[2] = strconv.ParseInt(f[11], 10, 64) // field 14
	s.STime, errs[3] = strconv.ParseInt(f[12], 10, 64) // field 15
	for _, err := range errs {
		if err != nil {
			return statFields{}, fmt.Errorf("stat: %w", err)
		}
	}
	return s, nil
}

// parseCtxSwitches is voluntary_ctxt_switches + nonvoluntary_ctxt_switches
// of one /proc/<pid>/task/<tid>/status.
func parseCtxSwitches(b []byte) int64 {
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
			x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}

// parseIO is syscr + syscw of one /proc/<pid>/io.
func parseIO(b []byte) int64 {
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "syscr" || k == "syscw") {
			x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			n += x
		}
	}
	return n
}

// groupPids lists the processes whose process group is one of pgids.
func groupPids(pgids []int) []int {
	want := map[int]bool{}
	for _, g := range pgids {
		want[g] = true
	}
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if s, err := parseStat(b); err == nil && want[s.PGrp] {
			out = append(out, pid)
		}
	}
	return out
}

// readCounters sums the counters of pids. A process that has gone is
// skipped: its counters are lost with it.
func readCounters(pids []int) procCounters {
	var c procCounters
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if s, err := parseStat(b); err == nil {
			c.Ticks += s.UTime + s.STime
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
			c.RW += parseIO(b)
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, t := range tasks {
			if b, err := os.ReadFile(t); err == nil {
				c.Ctx += parseCtxSwitches(b)
			}
		}
	}
	return c
}

// perfWorks says whether perf stat can count raw_syscalls:sys_enter of
// another process here (it needs the tracepoint and perf_event_paranoid
// or privileges that allow it); checked once.
var perfWorks = sync.OnceValue(func() bool {
	if *perfMode == "off" {
		return false
	}
	if _, err := exec.LookPath("perf"); err != nil {
		return false
	}
	busy := exec.Command("sh", "-c", "while :; do :; done </dev/null")
	if busy.Start() != nil {
		return false
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	p, err := startPerf([]int{busy.Process.Pid})
	if err != nil {
		return false
	}
	time.Sleep(200 * time.Millisecond)
	_, err = p.stop()
	return err == nil
})

// perfRun is perf stat counting the system calls of a set of processes
// until stop.
type perfRun struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startPerf(pids []int) (*perfRun, error) {
	ids := make([]string, len(pids))
	for i, p := range pids {
		ids[i] = strconv.Itoa(p)
	}
	p := &perfRun{}
	p.cmd = exec.Command("perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", strings.Join(ids, ","))
	p.cmd.Stderr = &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	// perf attaches after it starts; the first request of the window
	// must find it counting.
	time.Sleep(50 * time.Millisecond)
	return p, nil
}

// stop ends the count (perf prints its totals on SIGINT) and returns it.
func (p *perfRun) stop() (int64, error) {
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
	return parsePerfCSV(p.out.Bytes())
}

// parsePerfCSV reads the count of raw_syscalls:sys_enter from perf stat
// -x, output ("12345,,raw_syscalls:sys_enter,...").
func parsePerfCSV(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || f[2] != "raw_syscalls:sys_enter" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("perf stat: %q", f[0]) // "<not counted>", "<not supported>"
		}
		return n, nil
	}
	return 0, fmt.Errorf("perf stat printed no count: %s", b)
}

// costs is what a measured window cost per request.
type costs struct {
	CPU      float64 `json:"cpu_us,omitempty"`       // proxy CPU µs per request
	StackCPU float64 `json:"stack_cpu_us,omitempty"` // proxy + backends + memcached, µs per request
	Ctx      float64 `json:"ctx,omitempty"`          // proxy context switches per request
	Sys      float64 `json:"sys,omitempty"`          // proxy system calls per request
	SysPerf  bool    `json:"sys_perf,omitempty"`     // Sys counted by perf (else syscr+syscw)
}

// meter measures one window: the proxy's process groups and, when stack is
// not empty, the whole stack's (which includes the proxy's).
type meter struct {
	proxy, stack []int // pids
	p0, s0       procCounters
	perf         *perfRun
}

// startMeter starts a window. With syscalls, perf counts the proxy's
// system calls in it, where perf works: that costs the proxy about 140 ns
// of kernel time per call on this machine (a getppid loop: 215 ns a call
// alone, 355 with perf counting), so the runner counts them in each
// target's warm-up run and measures CPU in the rounds without perf.
func startMeter(proxyGroups, stackGroups []int, syscalls bool) *meter {
	m := &meter{proxy: groupPids(proxyGroups)}
	if len(stackGroups) > 0 {
		m.stack = groupPids(stackGroups)
	}
	if syscalls && perfWorks() {
		m.perf, _ = startPerf(m.proxy)
	}
	m.p0, m.s0 = readCounters(m.proxy), readCounters(m.stack)
	return m
}

// stop ends the window; requests is what the load generator counted in it.
func (m *meter) stop(requests int64) costs {
	p, s := readCounters(m.proxy).sub(m.p0), readCounters(m.stack).sub(m.s0)
	var c costs
	if requests <= 0 {
		if m.perf != nil {
			m.perf.stop()
		}
		return c
	}
	n := float64(requests)
	c.CPU = perRequestUS(p.Ticks, requests)
	if m.stack != nil {
		c.StackCPU = perRequestUS(s.Ticks, requests)
	}
	c.Ctx = float64(p.Ctx) / n
	c.Sys = float64(p.RW) / n
	if m.perf != nil {
		if calls, err := m.perf.stop(); err == nil {
			c.Sys, c.SysPerf = float64(calls)/n, true
		}
	}
	return c
}

// perRequestUS converts CPU ticks over requests into µs per request.
func perRequestUS(ticks, requests int64) float64 {
	if requests <= 0 {
		return 0
	}
	return float64(ticks) * 1e6 / userHZ / float64(requests)
}
