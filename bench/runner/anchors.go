package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The anchors of the comparison, beside nginx: HAProxy as a second plain
// proxy, "the classic stack" (nginx in front of two backends that keep
// their sessions in memcached themselves, bench/backend -classic), and,
// with -baseline, sessionproxy built from another commit, for A/B runs of
// a change in the same run.

var (
	baseline    = flag.String("baseline", "", "also measure sessionproxy built from this git revision (A/B of a change in one run)")
	sessionSize = flag.Int("session-size", 0, "bytes of filler in each new session (the backends' ?pad=); 0: a few bytes")
	liveSess    = flag.Int("sessions", 0, "live sessions (cookie slots over all wrk threads); 0: one per connection")
)

// slotsPerThread is the cookie slots each wrk thread cycles through.
func slotsPerThread() int {
	n := *liveSess
	if n <= 0 {
		n = *connections
	}
	return max(1, n / *threads)
}

// sized adds the session size to a session path.
func sized(path string) string {
	if *sessionSize <= 0 || path == "/plain" {
		return path
	}
	return path + "?pad=" + strconv.Itoa(*sessionSize)
}

// spConfig is a sessionproxy instance of the comparison: write is sync or
// async, local the hot tier's size ("0": none). max_idle_conns is the
// default (one connection per node, every get and write pipelined on it):
// it was 256 from when it sized only a pool of the old memcached client,
// and spread each instance's memcached traffic over 256 connections, so
// that the runs measured small batches users do not get.
func spConfig(addr, write, local string, backends, nodes []string) string {
	return proxyConfig(addr, write, local, backends, fmt.Sprintf(`  memcached:
    nodes: ["%s", "%s"]
    replicas: 2
`, nodes[0], nodes[1]))
}

// proxyConfig is a sessionproxy instance in front of the two backends
// with store, the YAML of its shared store under session:.
//
// An instance with a hot tier sets local_cache.ttl: 0, which is what the
// default (auto) is while a proxy is alone on its memcached nodes: its hot
// tier is authoritative and a write is one set per replica. The runner's
// instances share two memcached nodes and see each other's presence marks,
// so under auto each would take itself for one of several proxies (hot
// tier ttl 1 s, every write a read of both replicas and a compare-and-swap
// on each: about 19 system calls a write instead of 11), which is not the
// one-proxy deployment the scenarios measure.
func proxyConfig(addr, write, local string, backends []string, store string) string {
	ttl := ""
	if local != "0" && !strings.Contains(store, "client_cache: true") {
		ttl = "\n    ttl: 0"
	}
	return fmt.Sprintf(`listen: %q
access_log: off  # as nginx's below; the log's own cost: BenchmarkProxyAccessLogOn/Off
backends:
  - url: "http://%s"
  - url: "http://%s"
session:
  ignore: '^/plain'
  write: %s
  local_cache:
    size: %s%s
`, addr, backends[0], backends[1], write, local, ttl) + store
}

// nginxConfig is nginx as it would be run in production, as fair as we
// can make it, proxying backends; dir holds its pid, log and temp files.
func nginxConfig(dir, listen string, backends []string) string {
	return fmt.Sprintf(`# The usual production settings, as fair as we can make them.
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream app {
        server %[2]s;
        server %[3]s;
        keepalive 128;
    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`, dir, backends[0], backends[1], listen)
}

// haproxyConfig is HAProxy with round robin and idle server connections
// shared between clients (http-reuse always), one thread per core.
func haproxyConfig(listen string, backends []string) string {
	return fmt.Sprintf(`global
    maxconn 9000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option forwardfor
    http-reuse always
frontend web
    bind %s
    default_backend app
backend app
    balance roundrobin
    server b1 %s
    server b2 %s
`, listen, backends[0], backends[1])
}

// anchors holds the addresses of the anchors' front ends.
type anchors struct {
	haproxy string
	classic string            // nginx in front of the classic backends
	base    map[string]string // -baseline: "hot" and "cold" instances
	pids    map[string]*exec.Cmd
	tls     tlsAnchors // -tls (tlsbench.go)
	routed  string     // sessionproxy with a route table (routebench.go)
	thin    string     // bench/thinproxy: the thinnest fasthttp proxy
}

func (e *env) startAnchors(nodes []string) {
	a := &e.anchors
	a.pids = map[string]*exec.Cmd{}
	for _, p := range e.procs {
		for _, t := range []string{"hot", "async", "cold"} {
			if strings.HasSuffix(p.Args[len(p.Args)-1], "/"+t+".yaml") {
				a.pids["sessionproxy "+t] = p
			}
		}
		if strings.HasSuffix(p.Path, "nginx") {
			a.pids["nginx"] = p
		}
	}
	wait := []string{}

	a.haproxy = freeAddr()
	hconf := filepath.Join(e.dir, "haproxy.cfg")
	os.WriteFile(hconf, []byte(haproxyConfig(a.haproxy, e.backend)), 0o600)
	hbin, err := exec.LookPath("haproxy")
	if err != nil {
		hbin = "/usr/sbin/haproxy"
	}
	cmd, err := e.spawnLog("haproxy", hbin, "-db", "-f", hconf)
	if err != nil {
		log.Fatal(err)
	}
	a.pids["haproxy"] = cmd
	e.meter(a.haproxy, cmd.Process.Pid, e.sharedStack()...)
	wait = append(wait, a.haproxy)

	// The thinnest fasthttp proxy (fasthttp.Server + HostClient.Do): what
	// any fasthttp proxy costs before it does anything of its own.
	thin := filepath.Join(e.dir, "thinproxy")
	if out, err := goBuild(thin, "./bench/thinproxy"); err != nil {
		log.Fatalf("go build thinproxy: %v\n%s", err, out)
	}
	a.thin = freeAddr()
	tcmd, err := e.spawnLog("thinproxy", thin, "-listen", a.thin, "-backend", e.backend[0], "-backend", e.backend[1])
	if err != nil {
		log.Fatal(err)
	}
	a.pids["thinproxy"] = tcmd
	e.meter(a.thin, tcmd.Process.Pid, e.sharedStack()...)
	wait = append(wait, a.thin)

	var mc []string
	for _, n := range nodes {
		mc = append(mc, n[strings.IndexByte(n, ':')+1:])
	}
	var cbe []string
	classicStack := append([]int{}, e.memcachedPgids...)
	for i := 1; i <= 2; i++ {
		addr := freeAddr()
		cmd, err := e.spawnLog(fmt.Sprintf("classic-backend%d", i), filepath.Join(e.dir, "backend"),
			"-listen", addr, "-classic", "-memcached", strings.Join(mc, ","))
		if err != nil {
			log.Fatal(err)
		}
		cbe = append(cbe, addr)
		classicStack = append(classicStack, cmd.Process.Pid)
	}
	a.classic = freeAddr()
	cdir := filepath.Join(e.dir, "classic")
	os.MkdirAll(cdir, 0o755)
	cconf := filepath.Join(cdir, "nginx.conf")
	os.WriteFile(cconf, []byte(nginxConfig(cdir, a.classic, cbe)), 0o600)
	nbin, err := exec.LookPath("nginx")
	if err != nil {
		nbin = "/usr/sbin/nginx"
	}
	ccmd, err := e.spawnLog("nginx-classic", nbin, "-c", cconf, "-p", cdir, "-g", "daemon off;")
	if err != nil {
		log.Fatal(err)
	}
	// The classic stack's proxy is its front nginx; its stack, that
	// nginx, the two backends that keep the sessions and memcached.
	e.meter(a.classic, ccmd.Process.Pid, classicStack...)
	wait = append(wait, append(cbe, a.classic)...)

	if *baseline != "" {
		bin := buildAt(e.dir, *baseline)
		a.base = map[string]string{}
		for _, t := range []string{"hot", "cold"} {
			addr := freeAddr()
			local := hotTier
			if t == "cold" {
				local = "0"
			}
			conf := filepath.Join(e.dir, "base-"+t+".yaml")
			os.WriteFile(conf, []byte(spConfig(addr, "sync", local, e.backend, nodes)), 0o600)
			cmd, err := e.spawnLog("sessionproxy-base-"+t, bin, "run", "-config", conf)
			if err != nil {
				log.Fatal(err)
			}
			a.base[t] = addr
			a.pids["sessionproxy@"+*baseline+" "+t] = cmd
			e.meter(addr, cmd.Process.Pid, e.sharedStack()...)
			wait = append(wait, addr)
		}
	}
	for _, addr := range wait {
		waitListening(addr)
	}
	e.startTLS(nodes)
	e.startRouted(nodes)
}

// buildAt builds cmd/sessionproxy as it was at rev, from git archive into
// dir, and returns the binary.
func buildAt(dir, rev string) string {
	src := filepath.Join(dir, "baseline-src")
	os.MkdirAll(src, 0o755)
	arch := exec.Command("sh", "-c", fmt.Sprintf("git archive %q | tar -x -C %q", rev, src))
	if out, err := arch.CombinedOutput(); err != nil {
		log.Fatalf("git archive %s: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(dir, "sessionproxy-base")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sessionproxy")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("go build at %s: %v\n%s", rev, err, out)
	}
	return bin
}

// anchorRuns is what each round measures on the anchors: key, address, path.
func (e *env) anchorRuns() [][3]string {
	a := e.anchors
	runs := [][3]string{
		{"haproxy|1 plain proxy", a.haproxy, "/plain"},
		{"thinproxy|1 plain proxy", a.thin, "/plain"},
	}
	// HAProxy and the thin proxy pass the session scenarios' requests
	// through, as nginx does; one run per path serves every scenario
	// that sends it (passThroughScenarios).
	for _, s := range passThroughScenarios(scenarios) {
		runs = append(runs, [3]string{"haproxy|" + s.Name, a.haproxy, s.Path}, [3]string{"thinproxy|" + s.Name, a.thin, s.Path})
	}
	runs = append(runs,
		[3]string{"classic|2 session read", a.classic, "/read"},
		[3]string{"classic|3 session write (sync, 2 copies)", a.classic, "/write"})
	for _, s := range fullRunPipelined {
		if addr, ok := e.sp[s.Target]; ok {
			runs = append(runs, [3]string{pipelineRow + "|" + s.Name, addr, s.Path})
		}
	}
	if a.base != nil {
		for _, s := range scenarios {
			if addr, ok := a.base[s.Target]; ok {
				runs = append(runs, [3]string{"sessionproxy@" + *baseline + "|" + s.Name, addr, s.Path})
			}
		}
	}
	return append(append(runs, e.routedRuns()...), e.tlsRuns()...)
}

func (e *env) warmAnchors() {
	for _, r := range e.anchorRuns() {
		e.wrk(r[1], r[2], 2*time.Second)
	}
}

func (e *env) anchorRound(add func(string, result)) {
	for _, r := range e.anchorRuns() {
		add(r[0], e.wrk(r[1], r[2], *duration))
	}
}

// anchorRows are the anchors' rows of the table, in anchorRuns' order.
func anchorRows(runs map[string][]result) []row {
	var rows []row
	for _, k := range anchorKeys(runs) {
		target, name, _ := strings.Cut(k, "|")
		rows = append(rows, summarize(target, name, runs[k]))
	}
	return rows
}

func anchorKeys(runs map[string][]result) []string {
	var keys []string
	fixed := []string{"haproxy|1 plain proxy", "thinproxy|1 plain proxy"}
	for _, target := range []string{"haproxy", "thinproxy"} {
		for _, s := range passThroughScenarios(scenarios) {
			fixed = append(fixed, target+"|"+s.Name)
		}
	}
	for _, k := range append(fixed, "classic|2 session read", "classic|3 session write (sync, 2 copies)") {
		if _, ok := runs[k]; ok {
			keys = append(keys, k)
		}
	}
	for _, s := range fullRunPipelined {
		if k := pipelineRow + "|" + s.Name; runs[k] != nil {
			keys = append(keys, k)
		}
	}
	for _, s := range scenarios {
		k := "sessionproxy@" + *baseline + "|" + s.Name
		if _, ok := runs[k]; ok && *baseline != "" {
			keys = append(keys, k)
		}
	}
	return append(append(keys, routedKeys(runs)...), tlsKeys(runs)...)
}

// passThroughScenarios are the session scenarios as a proxy without
// sessions sees them: one per path, named after every scenario that sends
// it ("2,4 /read, passed through"), since to HAProxy or the thin proxy the
// hot and the cold read (or the sync and the async write) are the same
// requests; measuring each once keeps the run shorter by a run per path
// and round. The plain path and the streamed 1 MiB are left out.
func passThroughScenarios(ss []scenario) []scenario {
	var out []scenario
	at := map[string]int{}
	for _, s := range ss {
		if s.Path == "/plain" || s.Path == "/mib" {
			continue
		}
		num, _, _ := strings.Cut(s.Name, " ")
		if i, ok := at[s.Path]; ok {
			out[i].Name += "," + num
			continue
		}
		at[s.Path] = len(out)
		out = append(out, scenario{Name: num, Path: s.Path})
	}
	for i := range out {
		out[i].Name += " " + out[i].Path + ", passed through"
	}
	return out
}

// scenarioNumbers are the numbers a row's scenario name starts with:
// ["2"] for "2 session read (local hit)", ["3", "3b"] for a pass-through
// row "3,3b /write, passed through".
func scenarioNumbers(name string) []string {
	num, _, _ := strings.Cut(name, " ")
	return strings.Split(num, ",")
}

// findScenario is find, or else target's pass-through row that serves
// the scenario prefix names (for HAProxy and the thin proxy).
func findScenario(rows []row, target, prefix string) *row {
	if r := find(rows, target, prefix); r != nil {
		return r
	}
	want := strings.TrimSpace(prefix)
	for i, r := range rows {
		if r.Target == target && slices.Contains(scenarioNumbers(r.Scenario), want) {
			return &rows[i]
		}
	}
	return nil
}

// targetRow is one target of the speed issue with the ratio reached.
type targetRow struct {
	Scenario, Against string
	Reached, Target   float64
	AtMost            bool // the target is an upper bound (p99)
	Met               bool
}

func find(rows []row, target, scenarioPrefix string) *row {
	for i, r := range rows {
		if r.Target == target && strings.HasPrefix(r.Scenario, scenarioPrefix) {
			return &rows[i]
		}
	}
	return nil
}

// hotTierMiB is local_cache.size of every sessionproxy instance measured
// with a hot tier (the cold ones have none); hotTier is it in the config.
const hotTierMiB = 64

var hotTier = fmt.Sprintf("%dMiB", hotTierMiB)

// rssTargets checks the resident memory of each sessionproxy instance
// against the speed issue's budget: local_cache.size + 64 MiB + what its
// connections cost, at the 16 KiB a connection the issue aims at (wrk's
// connections; the per-connection cost itself is measured by -connmem).
func rssTargets(rss []rssRow, conns int) []targetRow {
	var out []targetRow
	for _, r := range rss {
		tier, ok := map[string]int64{"sessionproxy hot": hotTierMiB << 10, "sessionproxy async": hotTierMiB << 10, "sessionproxy cold": 0}[r.Target]
		if !ok {
			continue
		}
		budget := tier + 64<<10 + int64(conns)*16
		ratio := float64(r.KiB) / float64(budget)
		out = append(out, targetRow{Scenario: "RSS after the run, " + r.Target,
			Against: fmt.Sprintf("%d MiB tier + 64 MiB + %d × 16 KiB = %.0f MiB", tier>>10, conns, float64(budget)/1024),
			Reached: ratio, Target: 1, AtMost: true, Met: ratio <= 1})
	}
	return out
}

// rssRow is one process tree's resident memory after the run.
type rssRow struct {
	Target string
	KiB    int64
}

// rss reads the resident memory of each proxy, workers included.
func (e *env) rss() []rssRow {
	var out []rssRow
	for _, name := range []string{"sessionproxy hot", "sessionproxy async", "sessionproxy cold", "nginx", "haproxy", "thinproxy"} {
		if c, ok := e.anchors.pids[name]; ok && c.Process != nil {
			out = append(out, rssRow{name, treeRSS(c.Process.Pid)})
		}
	}
	return out
}

// treeRSS is VmRSS of pid and its children, in KiB.
func treeRSS(pid int) int64 {
	total := vmRSS(pid)
	for _, child := range children(pid) {
		total += treeRSS(child)
	}
	return total
}

func vmRSS(pid int) int64 { return procKiB(pid, "VmRSS:") }

func (t table) anchorMarkdown(b *strings.Builder) {
	if len(t.Targets) > 0 {
		b.WriteString("\nTargets of issue #30 (medians of this run; classic = nginx in front of backends keeping sessions in memcached themselves; reference rows have no target):\n\n")
		b.WriteString("| scenario | against | reached | target | met |\n|---|---|---:|---:|---|\n")
		for _, r := range t.Targets {
			target, met := "(reference)", ""
			if r.Target > 0 {
				op := "≥"
				if r.AtMost {
					op = "≤"
				}
				target, met = fmt.Sprintf("%s %g", op, r.Target), "no"
				if r.Met {
					met = "yes"
				}
			}
			fmt.Fprintf(b, "| %s | %s | %.2f× | %s | %s |\n", r.Scenario, r.Against, r.Reached, target, met)
		}
	}
	if len(t.RSS) > 0 {
		b.WriteString("\nResident memory after the run (process and its workers):\n\n| process | RSS MiB |\n|---|---:|\n")
		for _, r := range t.RSS {
			fmt.Fprintf(b, "| %s | %.1f |\n", r.Target, float64(r.KiB)/1024)
		}
	}
}
