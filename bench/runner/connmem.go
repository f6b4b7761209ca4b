package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// What one client connection costs a proxy in resident memory: RSS with
// connMemConns connections held open, minus RSS before, divided by
// connMemConns. Idle: each connection sends one request, reads its answer
// and stays open. Active: wrk drives as many connections. Every target and
// mode gets a process of its own, started for the measurement, so that
// memory one measurement left behind does not hide the next one's.

const connMemConns = 5000

// connMemRow is one target's per-connection cost in one mode.
type connMemRow struct {
	Target, Mode   string
	BeforeKiB      int64
	WithKiB        int64
	PerConnKiB     float64
	RPS            float64 `json:",omitempty"` // active: wrk's req/s at 5,000 connections
	Go             *goMem  `json:",omitempty"` // sessionproxy: the Go runtime's view, from the admin listener
	GoBefore       *goMem  `json:",omitempty"`
	PlainRPS       float64 `json:",omitempty"` // -connmem A/B: plain proxy req/s at 64 connections, median
	PlainP99       float64 `json:",omitempty"`
	ConnsConnected int     `json:",omitempty"`
}

// goMem is what runtime.MemStats says (via /debug/pprof/heap?debug=1).
type goMem struct {
	StackInuse, HeapInuse, HeapAlloc, Sys, GCSys, OtherSys int64 // bytes
	Goroutines                                             int
}

// memTarget starts a fresh process of one kind; it returns its address,
// the pids whose RSS counts, and its admin address ("" if none).
type memTarget struct {
	name  string
	start func(s *scaleEnv) (addr string, pids []int, admin string, stop func())
}

func (s *scaleEnv) memTargets() []memTarget {
	sp := func(name, bin string) memTarget {
		return memTarget{name, func(s *scaleEnv) (string, []int, string, func()) {
			addr, admin := freeAddr(), freeAddr()
			conf := filepath.Join(s.dir, "mem-"+strings.ReplaceAll(name, " ", "_")+".yaml")
			os.WriteFile(conf, []byte(spConfig(addr, "sync", hotTier, s.backend, s.nodes)+fmt.Sprintf("admin: %q\n", admin)), 0o600)
			cmd, err := s.spawnLog("mem-sessionproxy", bin, "run", "-config", conf)
			if err != nil {
				log.Fatal(err)
			}
			waitListening(addr)
			waitListening(admin)
			return addr, []int{cmd.Process.Pid}, admin, func() { s.kill(cmd.Process.Pid) }
		}}
	}
	ts := []memTarget{sp("sessionproxy", s.spBin)}
	if *baseline != "" {
		ts = append(ts, sp("sessionproxy@"+*baseline, s.baseBin()))
	}
	ts = append(ts, memTarget{"nginx", func(s *scaleEnv) (string, []int, string, func()) {
		t := s.startNginx(fmt.Sprintf("mem-nginx-%d", time.Now().UnixNano()), s.backend)
		waitListening(t.addr)
		return t.addr, t.pids, "", func() { s.kill(t.pids[0]) }
	}})
	ts = append(ts, memTarget{"haproxy", func(s *scaleEnv) (string, []int, string, func()) {
		addr := freeAddr()
		conf := filepath.Join(s.dir, "mem-haproxy.cfg")
		os.WriteFile(conf, []byte(haproxyConfig(addr, s.backend)), 0o600) // maxconn 9000: room for the 5,000
		cmd, err := s.spawnLog("mem-haproxy", haproxyBin(), "-db", "-f", conf)
		if err != nil {
			log.Fatal(err)
		}
		waitListening(addr)
		return addr, []int{cmd.Process.Pid}, "", func() { s.kill(cmd.Process.Pid) }
	}})
	return ts
}

func haproxyBin() string {
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	return "haproxy"
}

var baseBinOnce struct {
	sync.Once
	bin string
}

func (s *scaleEnv) baseBin() string {
	baseBinOnce.Do(func() { baseBinOnce.bin = buildAt(s.dir, *baseline) })
	return baseBinOnce.bin
}

// kill stops one process the runner started (and its process group).
func (e *env) kill(pid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		if p.Process.Pid == pid && p.ProcessState == nil {
			syscall.Kill(-pid, syscall.SIGKILL)
			p.Wait()
		}
	}
}

func pidsRSS(pids []int) int64 {
	var total int64
	for _, p := range pids {
		total += treeRSS(p)
	}
	return total
}

// connMem measures every target idle and active.
func (s *scaleEnv) connMem() []connMemRow {
	var rows []connMemRow
	for _, mode := range []string{"idle", "active"} {
		for _, t := range s.memTargets() {
			log.Printf("per-connection memory: %s, %d %s connections", t.name, connMemConns, mode)
			rows = append(rows, s.connMemOne(t, mode))
			r := rows[len(rows)-1]
			log.Printf("  %d KiB before, %d KiB with them: %.1f KiB per connection", r.BeforeKiB, r.WithKiB, r.PerConnKiB)
		}
	}
	return rows
}

func (s *scaleEnv) connMemOne(t memTarget, mode string) connMemRow {
	addr, pids, admin, stop := t.start(s)
	defer stop()
	warm := scalePoint{Scenario: "plain", Conns: 64, Sessions: 64}
	s.wrkAt(scaleTarget{addr: addr, pids: pids}, warm, 2*time.Second, "")
	time.Sleep(time.Second)
	row := connMemRow{Target: t.name, Mode: mode}
	row.BeforeKiB = pidsRSS(pids)
	row.GoBefore = readGoMem(admin)
	switch mode {
	case "idle":
		conns := holdIdle(addr, connMemConns)
		row.ConnsConnected = len(conns)
		time.Sleep(2 * time.Second)
		row.WithKiB = pidsRSS(pids)
		row.Go = readGoMem(admin)
		for _, c := range conns {
			c.Close()
		}
	case "active":
		p := scalePoint{Scenario: "plain", Conns: connMemConns, Sessions: connMemConns}
		var peak int64
		var g *goMem
		done := make(chan scaleRun)
		go func() { done <- s.wrkAt(scaleTarget{addr: addr, pids: pids}, p, 6*time.Second, "") }()
		time.Sleep(3 * time.Second)
		for i := 0; i < 10; i++ {
			peak = max(peak, pidsRSS(pids))
			if i == 5 {
				g = readGoMem(admin)
			}
			time.Sleep(200 * time.Millisecond)
		}
		r := <-done
		row.WithKiB, row.Go, row.RPS, row.ConnsConnected = peak, g, r.RPS, connMemConns
	}
	row.PerConnKiB = float64(row.WithKiB-row.BeforeKiB) / float64(connMemConns)
	return row
}

// holdIdle opens n connections to addr, sends one request on each and
// reads its answer, and returns them open.
func holdIdle(addr string, n int) []net.Conn {
	var mu sync.Mutex
	var conns []net.Conn
	var failed int
	var wg sync.WaitGroup
	per := n / 16
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					_, err = io.WriteString(c, "GET /plain HTTP/1.1\r\nHost: bench\r\n\r\n")
				}
				if err == nil {
					var resp *http.Response
					if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
				mu.Lock()
				if err != nil {
					failed++
					if c != nil {
						c.Close()
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		log.Printf("  %d of %d idle connections failed", failed, n)
	}
	return conns
}

// readGoMem reads MemStats from a sessionproxy admin listener, nil if none.
func readGoMem(admin string) *goMem {
	if admin == "" {
		return nil
	}
	g := &goMem{}
	get := func(path string) string {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, line := range strings.Split(get("/debug/pprof/heap?debug=1"), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "Stack": // "# Stack = StackInuse / StackSys"
			inuse, _, _ := strings.Cut(v, "/")
			g.StackInuse, _ = strconv.ParseInt(strings.TrimSpace(inuse), 10, 64)
		case "HeapInuse":
			g.HeapInuse = n
		case "HeapAlloc":
			g.HeapAlloc = n
		case "Sys":
			g.Sys = n
		case "GCSys":
			g.GCSys = n
		case "OtherSys":
			g.OtherSys = n
		}
	}
	first, _, _ := strings.Cut(get("/debug/pprof/goroutine?debug=1"), "\n")
	if _, v, ok := strings.Cut(first, "total "); ok {
		g.Goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	return g
}

func connMemMarkdown(rows []connMemRow) string {
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nResident memory per client connection at %d connections (RSS with them open minus RSS before, a fresh process per line; idle: one request each, then idle; active: wrk -t2 -c%d /plain):\n\n", connMemConns, connMemConns)
	b.WriteString("| target | connections | RSS before MiB | RSS with them MiB | KiB per connection | req/s | Go stacks per conn | Go heap in use per conn | goroutines |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.PlainRPS > 0 {
			continue
		}
		rps, stack, heap, gs := "", "", "", ""
		if r.RPS > 0 {
			rps = fmt.Sprintf("%.0f", r.RPS)
		}
		if r.Go != nil && r.GoBefore != nil {
			stack = fmt.Sprintf("%.1f KiB", float64(r.Go.StackInuse-r.GoBefore.StackInuse)/1024/connMemConns)
			heap = fmt.Sprintf("%.1f KiB", float64(r.Go.HeapInuse-r.GoBefore.HeapInuse)/1024/connMemConns)
			gs = fmt.Sprintf("%d → %d", r.GoBefore.Goroutines, r.Go.Goroutines)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | **%.1f** | %s | %s | %s | %s |\n", r.Target, r.Mode,
			float64(r.BeforeKiB)/1024, float64(r.WithKiB)/1024, r.PerConnKiB, rps, stack, heap, gs)
	}
	var ab []string
	for _, r := range rows {
		if r.PlainRPS > 0 {
			ab = append(ab, fmt.Sprintf("| %s | %.0f | %.2f |", r.Target, r.PlainRPS, r.PlainP99))
		}
	}
	if len(ab) > 0 {
		b.WriteString("\nPlain proxy at 64 connections, same run, interleaved rounds, medians:\n\n| target | req/s | p99 ms |\n|---|---:|---:|\n")
		b.WriteString(strings.Join(ab, "\n") + "\n")
	}
	return b.String()
}

// runConnMem is the -connmem mode: the per-connection memory alone and,
// with -baseline, the A/B of a change.
func runConnMem() int {
	raiseFileLimit()
	ensureTools()
	s := &scaleEnv{env: &env{sp: map[string]string{}}}
	defer s.stop()
	s.start()
	mem := append(s.connMem(), s.plainAB()...)
	md := fmt.Sprintf("Per-connection memory, measured %s on %s, commit %s.\n", time.Now().UTC().Format(time.RFC3339), machine(), gitCommit()) + connMemMarkdown(mem)
	fmt.Print(md)
	writeScaling(md, nil, mem)
	return 0
}

// plainAB measures, with -baseline, the plain proxy's req/s of each
// sessionproxy build and of nginx in interleaved rounds: a memory lever is
// kept only if it costs no speed.
func (s *scaleEnv) plainAB() []connMemRow {
	if *baseline == "" {
		return nil
	}
	type live struct {
		name, addr string
		runs       []scaleRun
	}
	var ls []*live
	for _, t := range s.memTargets() {
		if !strings.HasPrefix(t.name, "sessionproxy") && t.name != "nginx" {
			continue
		}
		addr, _, _, stop := t.start(s)
		defer stop()
		ls = append(ls, &live{name: t.name, addr: addr})
	}
	p := scalePoint{Scenario: "plain", Conns: 64, Sessions: 64}
	for _, l := range ls {
		s.wrkAt(scaleTarget{addr: l.addr}, p, 2*time.Second, "")
	}
	log.Printf("plain proxy A/B against %s", *baseline)
	for r := 0; r < max(3, *scalingRounds); r++ {
		for _, l := range ls {
			l.runs = append(l.runs, s.wrkAt(scaleTarget{addr: l.addr}, p, *scalingDuration, ""))
		}
	}
	var rows []connMemRow
	for _, l := range ls {
		row := summarizeScale(p, l.name, l.runs)
		log.Printf("  %s %.0f req/s p99 %.2f ms", l.name, row.RPS, row.P99)
		rows = append(rows, connMemRow{Target: l.name, Mode: "plain A/B", PlainRPS: row.RPS, PlainP99: row.P99})
	}
	return rows
}
