// Command runner measures sessionproxy against nginx with wrk on this
// machine, everything on loopback: two fast backends, two memcached nodes,
// a Redis master and replica (redis.go), sessionproxy and nginx, in interleaved rounds. It writes a table and a
// chart to bench/results. See bench/README.md.
//
//	make bench-wrk ARGS="[-rounds 3] [-duration 8s] [-connections 64] [-threads 2]"
//
// Every wrk run against a front end reports what a request cost its
// processes (CPU, context switches, system calls; procstat.go) beside
// req/s, and after the rounds an open-loop generator measures latency at a
// fixed rate (fixedrate.go). With -ab it compares two sessionproxy builds
// instead (ab.go):
//
//	make bench-wrk ARGS="-ab -a /tmp/sp-a -b /tmp/sp-b -scenarios plain,read,write,cold -rounds 6"
//
// With -fault it runs the fault scenario instead (fault.go): its own
// clients write their sessions second by second while memcached nodes and
// a backend are killed, frozen and restarted, and it charts req/s, p99 and
// errors over time.
//
//	make bench-fault ARGS="[-fault-clients 64] [-fault-duration 40s]"
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	rounds      = flag.Int("rounds", 3, "interleaved rounds (at least 3)")
	duration    = flag.Duration("duration", 8*time.Second, "wrk duration of each run")
	connections = flag.Int("connections", 64, "wrk connections")
	threads     = flag.Int("threads", 2, "wrk threads")
	outDir      = flag.String("out", "bench/results", "where the table and chart go")
	bigBodyOnly = flag.Bool("bigbody", false, "only the 1 GiB download and upload (bigbody.go)")
	redraw      = flag.Bool("redraw", false, "only redraw the charts from the latest.json in -out")
	keepDir     = flag.Bool("keep", false, "keep the run's directory (configurations and each process's log) instead of removing it")
	gibRun      = flag.Bool("gib", true, "end the full run with the 1 GiB download and upload (bigbody.go)")
)

// scenario is one measured workload.
type scenario struct {
	Name   string
	Path   string
	Target string // which sessionproxy instance: hot (local tier on), async (write: async) or cold (no local tier)
}

var scenarios = []scenario{
	{"1 plain proxy", "/plain", "hot"},
	{"2 session read (local hit)", "/read", "hot"},
	{"3 session write (sync, 2 replicas)", "/write", "hot"},
	{"3b session write (async)", "/write", "async"},
	{"4 cold read (no local tier)", "/read", "cold"},
	{"5 1 MiB response (streamed)", "/mib", "hot"},
}

// result is what the Lua script's done() prints.
type result struct {
	Requests int64   `json:"requests"`
	RPS      float64 `json:"rps"`
	P50      int64   `json:"p50_us"`
	P90      int64   `json:"p90_us"`
	P99      int64   `json:"p99_us"`
	Errors   int64   `json:"errors"`
	costs            // measured by the runner when the target is metered (procstat.go)
}

type env struct {
	dir     string
	mu      sync.Mutex // protects procs: the fault runner's signal handler may stop while a step spawns
	procs   []*exec.Cmd
	backend []string // host:port
	nginx   string
	sp      map[string]string
	anchors anchors  // HAProxy, the classic stack, -baseline (anchors.go)
	nodes   []string // the memcached nodes, "id:host:port"

	backendPgids, memcachedPgids, redisPgids []int
	profileAdmin                             string // the hot instance's admin listener, with -profile
	// countSyscalls has perf count system calls in wrk's runs: on in the
	// warm-up, off in the measured rounds (startMeter says why); sysSeen
	// keeps each front end and path's count for the rounds' results.
	countSyscalls bool
	sysSeen       map[string]float64
	// meters maps a front end's address to the process groups whose
	// cost wrk's runs against it report (procstat.go, meters.go).
	meters map[string]meterGroups
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	closeInheritedFiles()
	chdirRoot()
	if *faultMode {
		os.Exit(runFault())
	}
	if *syscallsMode {
		os.Exit(runSyscalls())
	}
	if *gnetMode {
		os.Exit(runGnet())
	}
	if *scalingMode {
		os.Exit(runScaling())
	}
	if *connMemMode {
		os.Exit(runConnMem())
	}
	if *fastcgiMode {
		os.Exit(runFastCGI()) // fastcgibench.go
	}
	if *h2Mode {
		os.Exit(runH2()) // h2bench.go
	}
	if *abMode {
		os.Exit(runAB()) // ab.go
	}
	if *redraw {
		var t table
		data, err := os.ReadFile(filepath.Join(*outDir, "latest.json"))
		if err == nil {
			err = json.Unmarshal(data, &t)
		}
		if err != nil {
			log.Fatalf("runner: %v", err)
		}
		drawCharts(t)
		return
	}
	if *rounds < 3 {
		log.Fatal("runner: -rounds must be at least 3")
	}
	ensureTools()
	e := &env{sp: map[string]string{}}
	defer e.stop()
	e.start()
	if *pipelineOnly {
		e.runPipeline() // pipeline.go
		return
	}
	if !*bigBodyOnly {
		e.startPipelined(true) // its rows run with the anchors' (anchors.go)
	}
	if *bigBodyOnly {
		fmt.Print(e.bigBody(filepath.Join(e.dir, "sessionproxy")).markdown())
		return
	}

	log.Printf("warming up; system calls counted by %s", sysSource())
	e.countSyscalls = true
	for _, t := range []string{e.nginx, e.sp["hot"], e.sp["async"], e.sp["cold"]} {
		for _, s := range scenarios {
			e.wrk(t, s.Path, 2*time.Second)
		}
	}
	e.warmAnchors()
	e.warmRedis()
	e.countSyscalls = false
	runs := map[string][]result{}
	add := func(key string, r result) { runs[key] = append(runs[key], r) }
	for r := 1; r <= *rounds; r++ {
		log.Printf("round %d of %d", r, *rounds)
		add("direct", e.wrk(e.backend[0], "/plain", *duration))
		for _, s := range scenarios {
			add("nginx|"+s.Name, e.wrk(e.nginx, s.Path, *duration))
			add("sessionproxy|"+s.Name, e.wrk(e.sp[s.Target], s.Path, *duration))
		}
		e.anchorRound(add)
		e.redisRound(add)
	}
	e.profileHot() // profile.go
	t := buildTable(runs)
	t.Fixed = e.runFixedRate(t.Rows[1].RPS * *fixedFraction) // fixedrate.go
	t.Targets = targetRows(t.Rows, t.Fixed)
	t.RSS = e.rss()
	t.Targets = append(t.Targets, rssTargets(t.RSS, *connections)...)
	md := t.markdown()
	if *gibRun {
		log.Printf("1 GiB each way through sessionproxy")
		md += e.bigBody(filepath.Join(e.dir, "sessionproxy")).markdown()
	}
	fmt.Print(md)
	writeResults(t, md)
}

func ensureTools() {
	var missing []string
	for bin, pkg := range map[string]string{"nginx": "nginx", "wrk": "wrk", "memcached": "memcached", "redis-server": "redis-server", "redis-cli": "redis-tools"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err != nil {
				missing = append(missing, pkg)
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	log.Printf("installing from Debian's packages: %s", strings.Join(missing, " "))
	run("apt-get", "update", "-qq")
	run("apt-get", append([]string{"install", "-y", "-qq"}, missing...)...)
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
}

// goBuild builds pkg, a path from the repository root, into bin. bench/
// is a module of its own, so its packages are built from inside it.
func goBuild(bin, pkg string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if rest, ok := strings.CutPrefix(pkg, "./bench/"); ok {
		cmd.Dir, cmd.Args[len(cmd.Args)-1] = "bench", "./"+rest
	}
	return cmd.CombinedOutput()
}

// chdirRoot moves to the repository root (the directory whose go.mod is
// the product's), so that the runner works from the root or from bench/.
func chdirRoot() {
	dir, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), "module sessionproxy\n") {
			if err := os.Chdir(dir); err != nil {
				log.Fatal(err)
			}
			return
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			log.Fatal("runner: run it inside the sessionproxy repository (make bench-wrk)")
		}
		dir = parent
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (e *env) spawn(name string, args ...string) {
	if _, err := e.spawnLog(filepath.Base(name), name, args...); err != nil {
		log.Fatal(err)
	}
}

// spawnLog starts a process that stop kills, logging to logName.log in
// e.dir. The process gets SIGKILL if the runner dies (Pdeathsig), so that
// even a runner killed with -9 leaves nothing listening.
func (e *env) spawnLog(logName, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.OpenFile(filepath.Join(e.dir, logName+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	e.mu.Lock()
	e.procs = append(e.procs, cmd)
	e.mu.Unlock()
	return cmd, nil
}

func waitListening(addr string) {
	if err := listening(addr, 15*time.Second); err != nil {
		log.Fatal(err)
	}
}

// listening waits up to d for something to accept connections on addr.
func listening(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

func (e *env) start() {
	sp := filepath.Join(e.startCore(true), "sessionproxy")
	nodes := e.nodes
	for _, target := range []string{"hot", "async", "cold"} {
		addr := freeAddr()
		local, write := hotTier, "sync"
		switch target {
		case "cold":
			local = "0"
		case "async":
			write = "async"
		}
		conf := filepath.Join(e.dir, target+".yaml")
		os.WriteFile(conf, []byte(spConfig(addr, write, local, e.backend, nodes)+e.adminFor(target)), 0o600)
		e.meter(addr, e.spawnPid(sp, "run", "-config", conf), e.sharedStack()...)
		e.sp[target] = addr
	}
	e.nginx = freeAddr()
	nginxConf := filepath.Join(e.dir, "nginx.conf")
	os.WriteFile(nginxConf, []byte(nginxConfig(e.dir, e.nginx, e.backend)), 0o600)
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		nginxBin = "/usr/sbin/nginx"
	}
	e.meter(e.nginx, e.spawnPid(nginxBin, "-c", nginxConf, "-p", e.dir, "-g", "daemon off;"), e.sharedStack()...)
	for _, a := range append(append([]string{}, e.backend...), e.nginx, e.sp["hot"], e.sp["async"], e.sp["cold"]) {
		waitListening(a)
	}
	e.startAnchors(nodes)
	e.startRedis()
}

// startCore builds bench/backend (and cmd/sessionproxy when withProxy) into a
// new e.dir, which it returns, and starts what every comparison shares: the two
// backends and the two memcached nodes, each in a process group of its
// own whose id e.backendPgids and e.memcachedPgids keep (the whole stack's
// CPU is theirs plus the proxy's, procstat.go).
func (e *env) startCore(withProxy bool) string {
	var err error
	if e.dir, err = os.MkdirTemp("", "sessionproxy-bench"); err != nil {
		log.Fatal(err)
	}
	be := filepath.Join(e.dir, "backend")
	bins := map[string]string{be: "./bench/backend"}
	if withProxy {
		bins[filepath.Join(e.dir, "sessionproxy")] = "./cmd/sessionproxy"
	}
	for bin, pkg := range bins {
		if out, err := goBuild(bin, pkg); err != nil {
			log.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	for i := 0; i < 2; i++ {
		addr := freeAddr()
		e.backendPgids = append(e.backendPgids, e.spawnPid(be, "-listen", addr))
		e.backend = append(e.backend, addr)
	}
	for i := 1; i <= 2; i++ {
		addr := freeAddr()
		_, port, _ := net.SplitHostPort(addr)
		// -c: while the runner's configs set max_idle_conns: 256 (until
		// 2026-12-08), each instance kept up to 256 connections to each
		// node under the cold read, and the runs start four to a dozen
		// instances: at memcached's default of 1024 the last one started
		// was refused ("ERROR Too many open connections"), its nodes
		// marked down, and an A/B's B side failed every cold read. Kept
		// for configurations that raise max_idle_conns again.
		args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "256", "-t", "2", "-c", "8192"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root")
		}
		e.memcachedPgids = append(e.memcachedPgids, e.spawnPid("memcached", args...))
		e.nodes = append(e.nodes, fmt.Sprintf("n%d:%s", i, addr))
	}
	for _, a := range e.backend {
		waitListening(a)
	}
	for _, n := range e.nodes {
		waitListening(n[strings.IndexByte(n, ':')+1:])
	}
	return e.dir
}

// spawnPid is spawn that returns the process's pid, which is also its
// process group's id.
func (e *env) spawnPid(name string, args ...string) int {
	cmd, err := e.spawnLog(filepath.Base(name), name, args...)
	if err != nil {
		log.Fatal(err)
	}
	return cmd.Process.Pid
}

func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		if p.ProcessState != nil {
			continue // killed and reaped by a fault step: its pid may be someone else's now
		}
		syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		p.Wait()
	}
	e.procs = nil
	if e.dir != "" && !*keepDir {
		os.RemoveAll(e.dir)
	} else if e.dir != "" {
		log.Printf("kept %s (its *.log are the processes' output)", e.dir)
	}
}

// wrk runs one measurement and returns its result.
func (e *env) wrk(addr, path string, d time.Duration) result {
	var m *meter
	if g, ok := e.meters[addr]; ok {
		m = startMeter(g.proxy, g.stack, e.countSyscalls)
	}
	out, err := exec.Command("wrk", fmt.Sprintf("-t%d", *threads), fmt.Sprintf("-c%d", *connections),
		fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency", "-s", "bench/session.lua",
		url(addr)+sized(path), "--", fmt.Sprint(slotsPerThread())).CombinedOutput()
	if err != nil {
		log.Fatalf("wrk: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "{") {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err == nil {
				if m != nil {
					r.costs = m.stop(r.Requests)
					e.keepSyscalls(addr, path, &r)
				}
				return r
			}
		}
	}
	log.Fatalf("wrk printed no result:\n%s", out)
	return result{}
}

// row is one line of the results table: medians over the rounds.
type row struct {
	Target, Scenario string
	RPS              float64
	P50, P99         float64 // ms
	Errors           int64
	Requests         int64   // over all rounds
	Ratio            float64 // RPS / nginx plain RPS
	// Medians of the cost per request (procstat.go), 0 where the target
	// is not metered: proxy CPU µs, whole stack CPU µs, the proxy's
	// context switches and system calls.
	CPU, StackCPU, Ctx, Sys float64
	SysPerf                 bool    // Sys counted by perf (else syscr+syscw)
	CPURatio                float64 // CPU / nginx plain CPU (costtable.go's fillRatios)
	StackRatio              float64 // StackCPU / the classic stack's in the scenario
}

type table struct {
	Rows                          []row
	Targets                       []targetRow // the speed issue's targets, with the ratios reached (anchors.go)
	RSS                           []rssRow    // resident memory after the run (anchors.go)
	Fixed                         []fixedRow  // the fixed-rate latency table (fixedrate.go)
	Date, Commit, Machine, Config string
}

// median sorts xs and returns its middle value, the mean of the two
// middle ones when len(xs) is even (an A/B of 6 rounds), 0 when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[n/2]
}

func summarize(target, name string, rs []result) row {
	var rps, p50, p99, cpu, stack, ctx, sys []float64
	var errs, reqs int64
	perf := len(rs) > 0
	for _, r := range rs {
		rps = append(rps, r.RPS)
		p50 = append(p50, float64(r.P50)/1000)
		p99 = append(p99, float64(r.P99)/1000)
		cpu, stack = append(cpu, r.CPU), append(stack, r.StackCPU)
		ctx, sys = append(ctx, r.Ctx), append(sys, r.Sys)
		perf = perf && r.SysPerf
		errs += r.Errors
		reqs += r.Requests
	}
	return row{Target: target, Scenario: name, RPS: median(rps), P50: median(p50), P99: median(p99), Errors: errs, Requests: reqs,
		CPU: median(cpu), StackCPU: median(stack), Ctx: median(ctx), Sys: median(sys), SysPerf: perf}
}

func buildTable(runs map[string][]result) table {
	t := table{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Commit:  gitCommit(),
		Machine: machine(),
		Config:  fmt.Sprintf("wrk -t%d -c%d -d%s, %d interleaved rounds, medians", *threads, *connections, *duration, *rounds),
	}
	t.Rows = append(t.Rows, summarize("direct", "backend (physical limit)", runs["direct"]))
	for _, s := range scenarios {
		t.Rows = append(t.Rows, summarize("nginx", s.Name, runs["nginx|"+s.Name]))
		t.Rows = append(t.Rows, summarize("sessionproxy", s.Name, runs["sessionproxy|"+s.Name]))
	}
	t.Rows = append(t.Rows, anchorRows(runs)...)
	t.Rows = append(t.Rows, redisRows(runs)...)
	base := t.Rows[1] // nginx, plain proxy
	for i := range t.Rows {
		t.Rows[i].Ratio = t.Rows[i].RPS / base.RPS
	}
	fillRatios(t.Rows, runs) // costtable.go
	return t
}

func (t table) markdown() string {
	var b strings.Builder
	t.costMarkdown(&b) // costtable.go
	fixedMarkdown(&b, t.Fixed)
	t.anchorMarkdown(&b)
	return b.String()
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		commit += "+changes"
	}
	return commit
}

func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s", runtime.NumCPU(), model, runtime.Version())
}

func writeResults(t table, md string) {
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	for _, name := range []string{stamp + ".md", "latest.md"} {
		os.WriteFile(filepath.Join(*outDir, name), []byte(md), 0o644)
	}
	js, _ := json.MarshalIndent(t, "", "  ")
	os.WriteFile(filepath.Join(*outDir, "latest.json"), js, 0o644)
	drawCharts(t)
	log.Printf("wrote %s", filepath.Join(*outDir, "latest.md"))
}

func drawCharts(t table) {
	for _, name := range []string{"latest.svg", "latest.png"} {
		if err := drawChart(t, filepath.Join(*outDir, name)); err != nil {
			log.Printf("chart: %v", err)
		}
	}
	for _, name := range []string{"latest-cpu.svg", "latest-cpu.png"} {
		if err := drawCostChart(t, filepath.Join(*outDir, name)); err != nil { // costchart.go
			log.Printf("chart: %v", err)
		}
	}
}
