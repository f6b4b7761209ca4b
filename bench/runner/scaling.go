package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The scaling mode (-scaling): one factor at a time around a base point of
// 64 connections, 4 KiB sessions and 1,000 live sessions, each point
// measured on sessionproxy and its anchor in the same round (nginx for the
// plain proxy, the classic stack for sessions), with the proxies' resident
// memory during the run; then the memory one client connection costs
// (connmem.go).
//
//	make bench-wrk ARGS=-scaling           # about 8 minutes
//	make bench-wrk ARGS=-connmem           # only the per-connection memory, with -baseline REV for an A/B

var (
	scalingMode     = flag.Bool("scaling", false, "run the scaling table (scaling.go) instead of the scenarios")
	connMemMode     = flag.Bool("connmem", false, "only the per-connection memory (connmem.go); with -baseline, an A/B")
	scalingRounds   = flag.Int("scaling-rounds", 2, "interleaved rounds per scaling point")
	scalingDuration = flag.Duration("scaling-duration", 3*time.Second, "wrk duration of each scaling run")
	manySessions    = flag.Int("scaling-many", 1_000_000, "live sessions of the many-sessions point, created before it is measured")
	evictCache      = flag.String("scaling-evict-cache", "16MiB", "local_cache.size of the instance measured at -scaling-many sessions: too small to hold them, so it evicts")
)

// scalePoint is one row pair of the scaling table.
type scalePoint struct {
	Factor   string // connections, session size, live sessions
	Value    string
	Scenario string // plain, read, write
	Conns    int
	Size     int // session filler bytes (?pad=)
	Sessions int // live sessions
	Many     bool
}

func scalePoints() []scalePoint {
	base := func(f, v string) scalePoint {
		return scalePoint{Factor: f, Value: v, Scenario: "read", Conns: 64, Size: 4096, Sessions: 1000}
	}
	var ps []scalePoint
	for _, c := range []int{64, 1000, 10000} {
		p := base("connections", fmt.Sprint(c))
		p.Scenario, p.Conns = "plain", c
		ps = append(ps, p)
	}
	for _, s := range []struct {
		v string
		n int
	}{{"100 B", 100}, {"4 KiB", 4096}, {"32 KiB", 32 << 10}} {
		p := base("session size", s.v)
		p.Size = s.n
		ps = append(ps, p)
	}
	w := base("session size", "4 KiB")
	w.Scenario = "write"
	ps = append(ps, w)
	for _, n := range []int{1000, *manySessions} {
		p := base("live sessions", fmt.Sprintf("%d", n))
		p.Size, p.Sessions, p.Many = 100, n, n > 1000
		ps = append(ps, p)
	}
	return ps
}

// scaleTarget is a proxy measured at the scaling points, and the
// processes whose resident memory counts as its own.
type scaleTarget struct {
	name  string
	addr  string
	pids  []int
	admin string // sessionproxy's admin listener, for the Go runtime's view of its memory
}

// scaleEnv is what the scaling mode starts.
type scaleEnv struct {
	*env
	sp, spEvict, nginx, classic scaleTarget
	spBin, beBin, nginxBin      string
	nodes                       []string // memcached "n1:host:port"
	mc                          []string // host:port
}

func raiseFileLimit() {
	// 10,000 wrk connections, as many accepted by the proxy and its own
	// upstream connections: children inherit the limit.
	want := uint64(1 << 18)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Fatal(err)
	}
	if rl.Max < want {
		nr := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nr); err == nil {
			return
		}
		want = rl.Max // not root: as far as the hard limit goes
	}
	rl.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Fatal(err)
	}
}

// closeInheritedFiles keeps the runner's children from inheriting the
// descriptors it was started with beyond stdin, stdout and stderr: run
// under "flock /tmp/bench.lock", an nginx worker orphaned by a runner that
// died would otherwise hold the lock, and every later measurement waits.
func closeInheritedFiles() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, ent := range ents {
		if fd, err := strconv.Atoi(ent.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func openFileLimit() uint64 {
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

// nginxBacklog lets nginx queue a burst of 10,000 connects (its default
// backlog on Linux is 511; Go's listeners take net.core.somaxconn).
func nginxBacklog(conf, addr string) string {
	return strings.Replace(conf, "listen "+addr+";", "listen "+addr+" backlog=65535;", 1)
}

func (s *scaleEnv) start() {
	var err error
	if s.dir, err = os.MkdirTemp("", "sessionproxy-scaling"); err != nil {
		log.Fatal(err)
	}
	s.spBin, s.beBin = filepath.Join(s.dir, "sessionproxy"), filepath.Join(s.dir, "backend")
	for bin, pkg := range map[string]string{s.spBin: "./cmd/sessionproxy", s.beBin: "./bench/backend"} {
		if out, err := goBuild(bin, pkg); err != nil {
			log.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	if s.nginxBin, err = exec.LookPath("nginx"); err != nil {
		s.nginxBin = "/usr/sbin/nginx"
	}
	for i := 0; i < 2; i++ {
		addr := freeAddr()
		s.spawn(s.beBin, "-listen", addr)
		s.backend = append(s.backend, addr)
	}
	for i := 1; i <= 2; i++ {
		addr := freeAddr()
		_, port, _ := strings.Cut(addr, ":")
		// Room for a million sessions on each node, the proxy's copy and
		// the classic backends' copy of each.
		args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "3072", "-t", "2", "-c", "4096"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root")
		}
		s.spawn("memcached", args...)
		s.nodes = append(s.nodes, fmt.Sprintf("n%d:%s", i, addr))
		s.mc = append(s.mc, addr)
	}
	s.sp = s.startSP("sp", s.spBin, hotTier)
	s.spEvict = s.startSP("sp-evict", s.spBin, *evictCache)
	s.nginx = s.startNginx("nginx", s.backend)
	var cbe []string
	var cpids []int
	for i := 1; i <= 2; i++ {
		addr := freeAddr()
		cmd, err := s.spawnLog(fmt.Sprintf("classic-backend%d", i), s.beBin, "-listen", addr, "-classic", "-memcached", strings.Join(s.mc, ","))
		if err != nil {
			log.Fatal(err)
		}
		cbe, cpids = append(cbe, addr), append(cpids, cmd.Process.Pid)
	}
	s.classic = s.startNginx("classic", cbe)
	s.classic.pids = append(s.classic.pids, cpids...)
	for _, a := range append(append([]string{}, s.backend...), append(s.mc, cbe...)...) {
		waitListening(a)
	}
	for _, t := range []scaleTarget{s.sp, s.spEvict, s.nginx, s.classic} {
		waitListening(t.addr)
	}
}

// startSP starts a sessionproxy (binary bin) with the comparison's hot
// instance configuration and a hot tier of local bytes.
func (s *scaleEnv) startSP(name, bin, local string) scaleTarget {
	addr, admin := freeAddr(), freeAddr()
	conf := filepath.Join(s.dir, name+".yaml")
	os.WriteFile(conf, []byte(spConfig(addr, "sync", local, s.backend, s.nodes)+fmt.Sprintf("admin: %q\n", admin)), 0o600)
	cmd, err := s.spawnLog(name, bin, "run", "-config", conf)
	if err != nil {
		log.Fatal(err)
	}
	return scaleTarget{name: name, addr: addr, pids: []int{cmd.Process.Pid}, admin: admin}
}

// startNginx starts nginx in front of backends, in a directory of its own.
func (s *scaleEnv) startNginx(name string, backends []string) scaleTarget {
	addr := freeAddr()
	dir := filepath.Join(s.dir, name)
	os.MkdirAll(dir, 0o755)
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(nginxBacklog(nginxConfig(dir, addr, backends), addr)), 0o600)
	cmd, err := s.spawnLog(name, s.nginxBin, "-c", conf, "-p", dir, "-g", "daemon off;")
	if err != nil {
		log.Fatal(err)
	}
	return scaleTarget{name: name, addr: addr, pids: []int{cmd.Process.Pid}}
}

func (t scaleTarget) rssKiB() int64 {
	var total int64
	for _, p := range t.pids {
		total += treeRSS(p)
	}
	return total
}

// scaleRun is one wrk run of one target at one point.
type scaleRun struct {
	result
	RSS int64 // KiB, the highest sample during the run
}

// wrkAt runs wrk against t at p, sampling t's resident memory every 200 ms.
func (s *scaleEnv) wrkAt(t scaleTarget, p scalePoint, d time.Duration, cookies string) scaleRun {
	threads := 2
	path := "/" + p.Scenario
	if p.Scenario != "plain" && p.Size > 0 {
		path += fmt.Sprintf("?pad=%d", p.Size)
	}
	args := []string{fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", p.Conns), fmt.Sprintf("-d%ds", int(d.Seconds())),
		"--timeout", "5s", "--latency", "-s", "bench/session.lua", url(t.addr) + path, "--", fmt.Sprint(max(1, p.Sessions/threads))}
	if cookies != "" {
		args = append(args, cookies, fmt.Sprint(threads))
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if r := t.rssKiB(); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	out, err := exec.Command("wrk", args...).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		log.Fatalf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err == nil {
				return scaleRun{result: r, RSS: peak.Load()}
			}
		}
	}
	log.Fatalf("wrk printed no result:\n%s", out)
	return scaleRun{}
}

// createSessions makes n sessions of size bytes through t (GET /read
// without a cookie, 256 at a time) and writes their cookies, one
// "name=value" a line, to file. It returns the sessions created per second.
func createSessions(t scaleTarget, n, size int, file string) float64 {
	const workers = 256
	hc := &fasthttp.HostClient{Addr: t.addr, MaxConns: workers, MaxIdemponentCallAttempts: 1}
	defer hc.CloseIdleConnections()
	f, err := os.Create(file)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var mu sync.Mutex
	var next, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			uri := fmt.Sprintf("http://%s/read?pad=%d", t.addr, size)
			for next.Add(1) <= int64(n) {
				req.Reset()
				req.SetRequestURI(uri)
				if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
					failed.Add(1)
					continue
				}
				var c []byte
				for _, v := range resp.Header.Cookies() {
					nv, _, _ := strings.Cut(string(v), ";")
					c = []byte(strings.TrimSpace(nv))
					break
				}
				if len(c) == 0 {
					failed.Add(1)
					continue
				}
				mu.Lock()
				w.Write(c)
				w.WriteByte('\n')
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if failed.Load() > 0 {
		log.Printf("  %s: %d of %d session creations failed", t.name, failed.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// scaleRow is one line of the scaling table: medians over the rounds.
type scaleRow struct {
	Point            scalePoint
	Target           string
	RPS, P50, P99    float64
	Errors           int64
	RSSMiB           float64
	GoHeapMiB        float64 `json:",omitempty"` // sessionproxy: HeapInuse after the point
	GoStackMiB       float64 `json:",omitempty"` // sessionproxy: StackInuse after the point
	Ratio            float64 // sessionproxy's req/s over the anchor's; 0 on the anchor's row
	CreatePerS       float64 `json:",omitempty"` // sessions created per second before the point
	FileLimit        uint64  `json:",omitempty"`
	CookieFile, Note string  `json:",omitempty"`
}

func summarizeScale(p scalePoint, target string, rs []scaleRun) scaleRow {
	var plain []result
	var rss []float64
	for _, r := range rs {
		plain = append(plain, r.result)
		rss = append(rss, float64(r.RSS)/1024)
	}
	s := summarize(target, "", plain)
	return scaleRow{Point: p, Target: target, RPS: s.RPS, P50: s.P50, P99: s.P99, Errors: s.Errors, RSSMiB: median(rss)}
}

// runScaling is the -scaling mode; it returns the exit status.
func runScaling() int {
	raiseFileLimit()
	ensureTools()
	s := &scaleEnv{env: &env{sp: map[string]string{}}}
	defer s.stop()
	s.start()
	log.Printf("open files: %d", openFileLimit())
	// First, over empty memcached nodes: a sessionproxy starting over
	// nodes that hold a million sessions lists and compares them all
	// (the start-up catch-up), which the fresh processes here would count.
	mem := append(s.connMem(), s.plainAB()...)
	d := *scalingDuration
	direct := scaleTarget{name: "direct", addr: s.backend[0]}
	var rows []scaleRow
	var notes []string
	for _, p := range scalePoints() {
		sp, anchor := s.sp, s.classic
		if p.Scenario == "plain" {
			anchor = s.nginx
		}
		cookies := map[string]string{}
		if p.Many {
			sp = s.spEvict
			for _, t := range []scaleTarget{sp, anchor} {
				file := filepath.Join(s.dir, t.name+"-cookies.txt")
				log.Printf("creating %d sessions of %d B through %s", p.Sessions, p.Size, t.name)
				rate := createSessions(t, p.Sessions, p.Size, file)
				notes = append(notes, fmt.Sprintf("%s: %d sessions created before the point at %.0f/s", t.name, p.Sessions, rate))
				cookies[t.name] = file
			}
		}
		log.Printf("%s %s (%s): warming up", p.Factor, p.Value, p.Scenario)
		s.wrkAt(sp, p, 2*time.Second, cookies[sp.name])
		s.wrkAt(anchor, p, 2*time.Second, cookies[anchor.name])
		var a, b []scaleRun
		for r := 0; r < *scalingRounds; r++ {
			a = append(a, s.wrkAt(sp, p, d, cookies[sp.name]))
			b = append(b, s.wrkAt(anchor, p, d, cookies[anchor.name]))
		}
		ra, rb := summarizeScale(p, "sessionproxy", a), summarizeScale(p, anchorName(anchor, s), b)
		if rb.RPS > 0 {
			ra.Ratio = ra.RPS / rb.RPS
		}
		if p.Many {
			ra.Note = fmt.Sprintf("local_cache.size %s", *evictCache)
		}
		if g := readGoMem(sp.admin); g != nil {
			ra.GoHeapMiB, ra.GoStackMiB = float64(g.HeapInuse)/(1<<20), float64(g.StackInuse)/(1<<20)
			ra.Note = strings.TrimPrefix(ra.Note+fmt.Sprintf("; Go heap %.0f MiB, stacks %.0f MiB", ra.GoHeapMiB, ra.GoStackMiB), "; ")
		}
		if p.Size == 32<<10 {
			notes = append(notes, "sessionproxy's heap after the 32 KiB point (inuse_space, top):\n\n```\n"+heapTop(sp.admin)+"```")
		}
		log.Printf("  sessionproxy %.0f req/s p99 %.2f ms %.0f MiB; %s %.0f req/s p99 %.2f ms %.0f MiB",
			ra.RPS, ra.P99, ra.RSSMiB, rb.Target, rb.RPS, rb.P99, rb.RSSMiB)
		rows = append(rows, ra, rb)
		if p.Scenario == "plain" {
			// The backend alone, through the same wrk: the ceiling of
			// this machine with wrk on it, to tell wrk's limits from the
			// proxies'.
			var c []scaleRun
			for r := 0; r < *scalingRounds; r++ {
				c = append(c, s.wrkAt(direct, p, d, ""))
			}
			rows = append(rows, summarizeScale(p, "direct (backend, no proxy)", c))
		}
	}
	md := scalingMarkdown(rows, notes, mem)
	fmt.Print(md)
	writeScaling(md, rows, mem)
	return 0
}

// heapTop is the top of a sessionproxy's heap profile, taken after a GC.
func heapTop(admin string) string {
	file := filepath.Join(os.TempDir(), fmt.Sprintf("scaling-heap-%d.prof", os.Getpid()))
	defer os.Remove(file)
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err.Error() + "\n"
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	os.WriteFile(file, data, 0o600)
	out, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", file).CombinedOutput()
	if err != nil {
		return err.Error() + "\n"
	}
	lines := strings.Split(string(out), "\n")
	return strings.Join(lines[min(len(lines), 4):min(len(lines), 18)], "\n") + "\n"
}

func anchorName(t scaleTarget, s *scaleEnv) string {
	if t.addr == s.nginx.addr {
		return "nginx"
	}
	return "classic"
}

func scalingMarkdown(rows []scaleRow, notes []string, mem []connMemRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Scaling, measured %s on %s, commit %s; wrk -t2 -d%s, %d interleaved rounds per point (sessionproxy, then its anchor), medians; open files %d.\n",
		time.Now().UTC().Format(time.RFC3339), machine(), gitCommit(), *scalingDuration, *scalingRounds, openFileLimit())
	b.WriteString("Base point: 64 connections, 4 KiB sessions, 1,000 live sessions; one factor changed per row. ")
	b.WriteString("RSS: the highest sample during the run; sessionproxy alone, nginx with its workers, classic = nginx and its two session-keeping backends (memcached counted for neither).\n\n")
	b.WriteString("| factor | value | scenario | target | req/s | p50 ms | p99 ms | errors | RSS MiB | sessionproxy / anchor |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		ratio := ""
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("**%.2f×**", r.Ratio)
		}
		target := r.Target
		if r.Note != "" {
			target += " (" + r.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %.2f | %.2f | %d | %.1f | %s |\n",
			r.Point.Factor, r.Point.Value, r.Point.Scenario, target, r.RPS, r.P50, r.P99, r.Errors, r.RSSMiB, ratio)
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(connMemMarkdown(mem))
	return b.String()
}

func writeScaling(md string, rows []scaleRow, mem []connMemRow) {
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	prefix := "scaling-"
	if rows == nil {
		prefix = "connmem-"
	}
	for _, name := range []string{prefix + stamp + ".md", prefix + "latest.md"} {
		os.WriteFile(filepath.Join(*outDir, name), []byte(md), 0o644)
	}
	js, _ := json.MarshalIndent(struct {
		Rows    []scaleRow
		ConnMem []connMemRow
	}{rows, mem}, "", "  ")
	os.WriteFile(filepath.Join(*outDir, prefix+"latest.json"), js, 0o644)
	log.Printf("wrote %s", filepath.Join(*outDir, prefix+"latest.md"))
}
