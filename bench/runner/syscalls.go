package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The system-call count (-syscalls): strace -c -f attached to one proxy
// at a time (sessionproxy's "hot" instance, every nginx worker, and the
// two probes of protos.go on the plain path) while wrk runs a fixed
// duration against it; each system call's count is divided by the
// requests wrk reports. strace makes the traced process several times
// slower, so the req/s of these runs mean nothing; calls per request do.
//
//	make bench-wrk ARGS=-syscalls

var (
	syscallsMode     = flag.Bool("syscalls", false, "count system calls per request with strace -c -f (syscalls.go) instead of the wrk comparison")
	syscallsDuration = flag.Duration("syscalls-duration", 5*time.Second, "with -syscalls: wrk duration of each traced run")
)

// straceCount is one line of strace -c's summary.
type straceCount struct {
	Calls, Errors int64
}

// traced is one traced wrk run: the counts and the requests they serve.
type traced struct {
	Target, Path string
	Requests     int64
	Counts       map[string]straceCount
}

func runSyscalls() int {
	if _, err := exec.LookPath("strace"); err != nil {
		run("apt-get", "install", "-y", "-qq", "strace")
	}
	ensureTools()
	e := &env{sp: map[string]string{}}
	defer e.stop()
	e.start()
	probes := e.startProbes()

	type target struct {
		name, addr string
		pids       func() []int
	}
	sp := e.anchors.pids["sessionproxy hot"].Process.Pid
	ngx := e.anchors.pids["nginx"].Process.Pid
	targets := []target{
		{"sessionproxy", e.sp["hot"], func() []int { return []int{sp} }},
		{"nginx", e.nginx, func() []int { return children(ngx) }}, // the workers; the master only supervises
	}
	for _, p := range probes {
		pid := p.cmd.Process.Pid
		targets = append(targets, target{p.name, p.addr, func() []int { return []int{pid} }})
	}
	var runs []traced
	for _, path := range []string{"/plain", "/read", "/write"} {
		for _, t := range targets {
			if path != "/plain" && (t.name == "thinproxy" || t.name == "gnetproxy") {
				continue // no session store behind them
			}
			e.wrk(t.addr, path, time.Second) // warm: upstream and memcached connections open, sessions made
			log.Printf("strace -c -f: %s %s", t.name, path)
			runs = append(runs, e.traceRun(t.name, t.addr, path, t.pids()))
		}
	}
	md := syscallMarkdown(runs)
	fmt.Print(md)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Print(err)
		return 1
	}
	file := filepath.Join(*outDir, "syscalls-"+time.Now().UTC().Format("20060102-150405")+".md")
	if err := os.WriteFile(file, []byte(md), 0o644); err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("wrote %s", file)
	return 0
}

// traceRun attaches strace -c -f to pids, runs wrk against addr and
// returns strace's counts with wrk's request count.
func (e *env) traceRun(name, addr, path string, pids []int) traced {
	out := filepath.Join(e.dir, "strace-"+name+strings.ReplaceAll(path, "/", "-")+".txt")
	args := []string{"-c", "-f", "-qq", "-o", out}
	for _, p := range pids {
		args = append(args, "-p", strconv.Itoa(p))
	}
	cmd := exec.Command("strace", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatalf("strace: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // attached to every thread before the load starts
	r := e.wrk(addr, path, *syscallsDuration)
	cmd.Process.Signal(syscall.SIGINT) // strace detaches and writes its summary
	if err := cmd.Wait(); err != nil {
		log.Printf("strace on %s: %v", name, err)
	}
	f, err := os.Open(out)
	if err != nil {
		log.Fatalf("strace wrote no summary: %v", err)
	}
	defer f.Close()
	counts, err := parseStraceSummary(f)
	if err != nil {
		log.Fatalf("strace summary of %s: %v", name, err)
	}
	if r.Errors > 0 {
		log.Printf("%s %s: %d errors under strace", name, path, r.Errors)
	}
	return traced{Target: name, Path: path, Requests: r.Requests, Counts: counts}
}

// parseStraceSummary reads strace -c's table: "% time seconds usecs/call
// calls [errors] syscall" lines between the dashed rules, the errors
// column empty when there were none; the total line is left out.
func parseStraceSummary(f io.Reader) (map[string]straceCount, error) {
	counts := map[string]straceCount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] == "%" || strings.HasPrefix(fields[0], "-") {
			continue
		}
		name := fields[len(fields)-1]
		if name == "total" {
			continue
		}
		calls, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		var errs int64
		if len(fields) == 6 {
			if errs, err = strconv.ParseInt(fields[4], 10, 64); err != nil {
				return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
			}
		}
		counts[name] = straceCount{calls, errs}
	}
	if len(counts) == 0 {
		return nil, fmt.Errorf("no system calls in the summary")
	}
	return counts, sc.Err()
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		child, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// syscallMarkdown writes a table per path: a row per system call, calls
// per request for each target (failed calls, mostly EAGAIN, in brackets).
func syscallMarkdown(runs []traced) string {
	var b strings.Builder
	fmt.Fprintf(&b, "System calls per request, %s on %s, commit %s: strace -c -f attached to each proxy in turn "+
		"(nginx: every worker) for a wrk run of %s, -t%d -c%d; each count divided by the requests wrk reports. "+
		"In brackets: the calls that failed (EAGAIN mostly). strace slows the traced process: only the ratios mean anything.\n",
		time.Now().UTC().Format(time.RFC3339), machine(), gitCommit(), *syscallsDuration, *threads, *connections)
	for _, path := range []string{"/plain", "/read", "/write"} {
		var cols []traced
		names := map[string]bool{}
		for _, r := range runs {
			if r.Path == path {
				cols = append(cols, r)
				for n := range r.Counts {
					names[n] = true
				}
			}
		}
		if len(cols) == 0 {
			continue
		}
		// Rows sorted by the first target's calls, most first.
		var rows []string
		for n := range names {
			rows = append(rows, n)
		}
		sort.Slice(rows, func(i, j int) bool {
			ci, cj := cols[0].Counts[rows[i]].Calls, cols[0].Counts[rows[j]].Calls
			if ci != cj {
				return ci > cj
			}
			return rows[i] < rows[j]
		})
		fmt.Fprintf(&b, "\n### %s\n\n| syscall |", path)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", c.Target)
		}
		b.WriteString("\n|---|")
		for range cols {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		per := func(n int64, c traced) float64 { return float64(n) / float64(max(c.Requests, 1)) }
		for _, n := range rows {
			fmt.Fprintf(&b, "| %s |", n)
			for _, c := range cols {
				sc := c.Counts[n]
				if sc.Calls == 0 {
					b.WriteString(" |")
					continue
				}
				fmt.Fprintf(&b, " %.3f", per(sc.Calls, c))
				if sc.Errors > 0 {
					fmt.Fprintf(&b, " (%.3f)", per(sc.Errors, c))
				}
				b.WriteString(" |")
			}
			b.WriteString("\n")
		}
		b.WriteString("| **total** |")
		for _, c := range cols {
			var tot int64
			for _, sc := range c.Counts {
				tot += sc.Calls
			}
			fmt.Fprintf(&b, " **%.2f** |", per(tot, c))
		}
		b.WriteString("\n| requests traced |")
		for _, c := range cols {
			fmt.Fprintf(&b, " %d |", c.Requests)
		}
		b.WriteString("\n")
	}
	return b.String()
}
