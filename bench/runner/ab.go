package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The A/B of two sessionproxy builds (issue #30's levers are each kept only
// if they win one): both binaries in front of the same two backends and
// memcached nodes, one instance per configuration each, measured in
// interleaved rounds (A then B, B then A in the next round, so that
// neither always runs right after the other's load), with each window's
// cost per request from /proc and perf (procstat.go).
//
//	make bench-wrk ARGS="-ab -a /tmp/sp-a -b /tmp/sp-b -scenarios plain,read,write,cold -rounds 6"
//
// -a and -b are binaries, or git revisions built from git archive.

var (
	abMode      = flag.Bool("ab", false, "A/B two sessionproxy builds, -a and -b, in interleaved rounds (ab.go)")
	abA         = flag.String("a", "", "with -ab: the A sessionproxy binary, or a git revision to build")
	abB         = flag.String("b", "", "with -ab: the B sessionproxy binary, or a git revision to build")
	abScenarios = flag.String("scenarios", "plain,read,write,cold", "with -ab: comma-separated, of "+abScenarioNames())
	abAConns    = flag.Int("a-conns", 0, "with -ab: session.memcached.max_idle_conns of the A side's instances (0: left out, the shipped default)")
	abBConns    = flag.Int("b-conns", 0, "with -ab: the same for the B side; with -a and -b the same binary, an A/B of a setting")
)

// abScenario is one workload of the A/B: a path through an instance of
// one configuration.
type abScenario struct {
	Name, Path, Config, About string
}

var abAll = []abScenario{
	{"plain", "/plain", "hot", "plain proxy, no session work"},
	{"read", "/read", "hot", "session read, hot tier"},
	{"write", "/write", "hot", "session write, sync, 2 replicas"},
	{"async", "/write", "async", "session write, write: async"},
	{"cold", "/read", "cold", "cold read, no hot tier"},
	{"pplain", "/plain", "pipeline", "plain proxy, pipeline: 8"},
	{"pread", "/read", "pipeline", "session read, hot tier, pipeline: 8"},
	{"pwrite", "/write", "pipeline", "session write, sync, 2 replicas, pipeline: 8"},
	{"pcold", "/read", "pcold", "cold read, no hot tier, pipeline: 8"},
}

func abScenarioNames() string {
	var names []string
	for _, s := range abAll {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func parseABScenarios(list string) ([]abScenario, error) {
	var out []abScenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, s := range abAll {
			if s.Name == name {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", name, abScenarioNames())
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenarios")
	}
	return out, nil
}

// abConfig is the YAML of a sessionproxy instance of configuration name,
// with conns set as session.memcached.max_idle_conns unless it is 0.
func abConfig(name, addr string, conns int, backends, nodes []string) string {
	if conns > 0 {
		return withConns(abConfig(name, addr, 0, backends, nodes), conns)
	}
	switch name {
	case "cold":
		return spConfig(addr, "sync", "0", backends, nodes)
	case "async":
		return spConfig(addr, "async", hotTier, backends, nodes)
	case "pipeline":
		return spConfig(addr, "sync", hotTier, backends, nodes) + "pipeline: 8\n"
	case "pcold":
		return spConfig(addr, "sync", "0", backends, nodes) + "pipeline: 8\n"
	}
	return spConfig(addr, "sync", hotTier, backends, nodes)
}

// withConns sets max_idle_conns in conf's memcached block, which spConfig
// writes with replicas as its last key before anything appended.
func withConns(conf string, conns int) string {
	return strings.Replace(conf, "    replicas: 2\n", fmt.Sprintf("    replicas: 2\n    max_idle_conns: %d\n", conns), 1)
}

// abSide is one of the two builds (or one build with two settings).
type abSide struct {
	label, bin string
	conns      int               // max_idle_conns, 0 for the default
	addr       map[string]string // configuration → listen address
}

func runAB() int {
	if *rounds < 2 {
		log.Print("runner: -ab needs at least 2 rounds")
		return 1
	}
	if *abA == "" || *abB == "" {
		log.Print("runner: -ab needs -a and -b (binaries or git revisions)")
		return 1
	}
	scs, err := parseABScenarios(*abScenarios)
	if err != nil {
		log.Printf("runner: -scenarios: %v", err)
		return 1
	}
	ensureTools()
	e := &env{sp: map[string]string{}}
	defer e.stop()
	e.startCore(false)
	sides := []*abSide{{label: "A", bin: *abA, conns: *abAConns}, {label: "B", bin: *abB, conns: *abBConns}}
	for _, s := range sides {
		if _, err := os.Stat(s.bin); err != nil {
			log.Printf("%s: %s is no file; building it as a git revision", s.label, s.bin)
			s.bin = buildAt(filepath.Join(e.dir, "build-"+s.label), s.bin)
		}
		s.addr = map[string]string{}
		for _, sc := range scs {
			if _, ok := s.addr[sc.Config]; ok {
				continue
			}
			addr := freeAddr()
			conf := filepath.Join(e.dir, s.label+"-"+sc.Config+".yaml")
			os.WriteFile(conf, []byte(abConfig(sc.Config, addr, s.conns, e.backend, e.nodes)), 0o600)
			cmd, err := e.spawnLog("sessionproxy-"+s.label+"-"+sc.Config, s.bin, "run", "-config", conf)
			if err != nil {
				log.Print(err)
				return 1
			}
			waitListening(addr)
			e.meter(addr, cmd.Process.Pid, e.sharedStack()...)
			s.addr[sc.Config] = addr
		}
	}
	log.Printf("warming up; system calls counted by %s", sysSource())
	e.countSyscalls = true
	for _, sc := range scs {
		for _, s := range sides {
			e.wrk(s.addr[sc.Config], sc.Path, 2*time.Second)
		}
	}
	e.countSyscalls = false
	runs := map[string][]result{} // side label + "|" + scenario name
	for r := 1; r <= *rounds; r++ {
		log.Printf("A/B round %d of %d", r, *rounds)
		for _, sc := range scs {
			order := sides
			if r%2 == 0 {
				order = []*abSide{sides[1], sides[0]}
			}
			for _, s := range order {
				k := s.label + "|" + sc.Name
				runs[k] = append(runs[k], e.wrk(s.addr[sc.Config], sc.Path, *duration))
			}
		}
	}
	md := abMarkdown(sideName(*abA, *abAConns), sideName(*abB, *abBConns), scs, runs)
	fmt.Print(md)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Print(err)
		return 1
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	for _, name := range []string{"ab-" + stamp + ".md", "ab-latest.md"} {
		os.WriteFile(filepath.Join(*outDir, name), []byte(md), 0o644)
	}
	log.Printf("wrote %s", filepath.Join(*outDir, "ab-latest.md"))
	return 0
}

// sideName is how the report names a side: its build as given, and its
// max_idle_conns when set.
func sideName(build string, conns int) string {
	if conns > 0 {
		return fmt.Sprintf("%s` with `max_idle_conns: %d", build, conns)
	}
	return build
}

// sysSource says where the system call counts come from.
func sysSource() string {
	if perfWorks() {
		return "perf stat -e raw_syscalls:sys_enter in each target's 2 s warm-up run (perf's counting costs the proxy about 140 ns of CPU a call, so it is off in the measured rounds)"
	}
	return "/proc/<pid>/io syscr+syscw (read- and write-like calls only: a lower bound)"
}

// abStats are the medians of one side in one scenario.
type abStats struct {
	RPS, CPU, Stack, Ctx, Sys, P99 float64
	Errors, Requests               int64 // over all rounds
}

// erratic says whether more than 1% of the requests failed: a failed
// request (a memcached node marked down by a slow answer, say) costs less
// than a served one, so CPU per request no longer compares.
func (s abStats) erratic() bool { return s.Errors*100 > s.Requests }

func abSummary(rs []result) abStats {
	var s abStats
	col := func(f func(result) float64) float64 {
		xs := make([]float64, 0, len(rs))
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	s.RPS = col(func(r result) float64 { return r.RPS })
	s.CPU = col(func(r result) float64 { return r.CPU })
	s.Stack = col(func(r result) float64 { return r.StackCPU })
	s.Ctx = col(func(r result) float64 { return r.Ctx })
	s.Sys = col(func(r result) float64 { return r.Sys })
	s.P99 = col(func(r result) float64 { return float64(r.P99) / 1000 })
	for _, r := range rs {
		s.Errors += r.Errors
		s.Requests += r.Requests
	}
	return s
}

// ratio is b/a, 0 when a is 0 (nothing measured).
func ratio(b, a float64) float64 {
	if a == 0 {
		return 0
	}
	return b / a
}

// pairedRatios are B's over A's of each round, in round order, of f.
func pairedRatios(a, b []result, f func(result) float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		out = append(out, ratio(f(b[i]), f(a[i])))
	}
	return out
}

func abMarkdown(a, b string, scs []abScenario, runs map[string][]result) string {
	var w strings.Builder
	fmt.Fprintf(&w, "A/B measured %s on %s, runner at commit %s; A = `%s`, B = `%s`; wrk -t%d -c%d -d%s, %d interleaved rounds (A, B; then B, A), medians. "+
		"CPU is utime+stime of the proxy's process from /proc over each wrk run, divided by the requests wrk counted; "+
		"the stack adds the two backends and two memcached nodes; system calls: %s.\n\n",
		time.Now().UTC().Format(time.RFC3339), machine(), gitCommit(), a, b, *threads, *connections, *duration, *rounds, sysSource())
	erratic := false
	w.WriteString("| scenario | CPU µs/req A | B | **B/A** | paired B/A by round | req/s A | B | B/A | p99 ms A | B | errors A/B |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|\n")
	for _, sc := range scs {
		ra, rb := runs["A|"+sc.Name], runs["B|"+sc.Name]
		sa, sb := abSummary(ra), abSummary(rb)
		pr := pairedRatios(ra, rb, func(r result) float64 { return r.CPU })
		var ps []string
		for _, x := range pr {
			ps = append(ps, fmt.Sprintf("%.2f", x))
		}
		warn := ""
		if sa.erratic() || sb.erratic() {
			warn, erratic = " ⚠", true
		}
		fmt.Fprintf(&w, "| %s (%s)%s | %.1f | %.1f | **%.2f** | %s (median %.2f) | %.0f | %.0f | %.2f | %.2f | %.2f | %d/%d |\n",
			sc.Name, sc.About, warn, sa.CPU, sb.CPU, ratio(sb.CPU, sa.CPU), strings.Join(ps, " "), median(append([]float64{}, pr...)),
			sa.RPS, sb.RPS, ratio(sb.RPS, sa.RPS), sa.P99, sb.P99, sa.Errors, sb.Errors)
	}
	if erratic {
		w.WriteString("\n⚠ More than 1% of one side's requests failed: a failed request costs less than a served one, so its CPU per request does not compare. Look for `memcached node down` in the logs (-keep): on a loaded machine a memcached answer slower than the 100 ms timeout marks a node down.\n")
	}
	w.WriteString("\n| scenario | ctx switches/req A | B | B/A | syscalls/req A | B | B/A | whole stack CPU µs/req A | B | B/A |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sc := range scs {
		sa, sb := abSummary(runs["A|"+sc.Name]), abSummary(runs["B|"+sc.Name])
		fmt.Fprintf(&w, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.2f |\n",
			sc.Name, sa.Ctx, sb.Ctx, ratio(sb.Ctx, sa.Ctx), sa.Sys, sb.Sys, ratio(sb.Sys, sa.Sys), sa.Stack, sb.Stack, ratio(sb.Stack, sa.Stack))
	}
	w.WriteString("\nB/A below 1 in CPU, context switches and system calls is B cheaper. USER_HZ is 100: a run of a few seconds at tens of thousands of req/s " +
		"spends hundreds of ticks, so one tick is under 1%. The machine is shared: trust paired ratios that agree in sign over most rounds, not one median.\n")
	return w.String()
}
