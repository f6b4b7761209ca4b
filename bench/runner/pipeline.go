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

// The pipelining A/B (make bench-wrk ARGS="-pipeline"): the plain proxy
// and the session read through nginx, sessionproxy, and sessionproxy with
// pipeline: 8 to the same backends, in interleaved rounds, so that the
// lever is judged within one run.

var pipelineOnly = flag.Bool("pipeline", false, "only the pipelining A/B (pipeline.go): nginx, sessionproxy and sessionproxy with pipeline: 8")

// pipelineTarget is the instance with pipeline: 8, and pipelineRow the
// name its rows go by in the full run's table.
const (
	pipelineTarget = "hot-pipeline"
	pipelineRow    = "sessionproxy pipeline 8"
)

// pipelineScenarios are measured on nginx, the "hot" instance and the
// pipelined one; Name is the pipelined row's.
var pipelineScenarios = []scenario{
	{"1 plain proxy", "/plain", pipelineTarget},
	{"2 session read (local hit)", "/read", pipelineTarget},
}

// coldPipelineTarget is the instance without a hot tier with pipeline: 8,
// for the full run's pipelined cold read.
const coldPipelineTarget = "cold-pipeline"

// fullRunPipelined are the pipelined rows of the full run: every
// scenario of the sync instances ("hot", whose write is sync, and "cold"),
// on the pipelined instance of the same configuration. The async write
// (3b) has none: pipelining is the backend side's, which 3 measures.
var fullRunPipelined = []scenario{
	{"1 plain proxy", "/plain", pipelineTarget},
	{"2 session read (local hit)", "/read", pipelineTarget},
	{"3 session write (sync, 2 replicas)", "/write", pipelineTarget},
	{"4 cold read (no local tier)", "/read", coldPipelineTarget},
}

// startPipelined starts the hot instance again with pipeline: 8 (its
// write is sync, as the hot instance's), and with cold also the cold one.
func (e *env) startPipelined(cold bool) {
	targets := map[string]string{pipelineTarget: hotTier}
	if cold {
		targets[coldPipelineTarget] = "0"
	}
	for target, local := range targets {
		addr := freeAddr()
		conf := filepath.Join(e.dir, target+".yaml")
		os.WriteFile(conf, []byte(spConfig(addr, "sync", local, e.backend, e.nodes)+"pipeline: 8\n"), 0o600)
		e.meter(addr, e.spawnPid(filepath.Join(e.dir, "sessionproxy"), "run", "-config", conf), e.sharedStack()...)
		e.sp[target] = addr
		waitListening(addr)
	}
}

// runPipeline is the -pipeline mode: the A/B alone, printed and written
// to pipeline-latest.md in -out.
func (e *env) runPipeline() {
	e.startPipelined(false)
	md := e.pipelineAB()
	fmt.Print(md)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	os.WriteFile(filepath.Join(*outDir, "pipeline-latest.md"), []byte(md), 0o644)
}

// pipelineAB runs the rounds and returns the table as markdown.
func (e *env) pipelineAB() string {
	targets := []struct{ name, key string }{{"nginx", "nginx"}, {"sessionproxy", "hot"}, {"sessionproxy pipeline 8", pipelineTarget}}
	addr := func(key string) string {
		if key == "nginx" {
			return e.nginx
		}
		return e.sp[key]
	}
	for _, s := range pipelineScenarios {
		for _, t := range targets {
			e.wrk(addr(t.key), s.Path, 2*time.Second)
		}
	}
	runs := map[string][]result{}
	for r := 1; r <= *rounds; r++ {
		fmt.Fprintf(os.Stderr, "pipeline round %d of %d\n", r, *rounds)
		for _, s := range pipelineScenarios {
			// The order rotates each round, so no target always runs
			// right after another's load.
			for i := range targets {
				t := targets[(i+r)%len(targets)]
				runs[t.name+"|"+s.Path] = append(runs[t.name+"|"+s.Path], e.wrk(addr(t.key), s.Path, *duration))
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s, commit %s; wrk -t%d -c%d -d%s, %d interleaved rounds, medians.\n\n",
		time.Now().UTC().Format(time.RFC3339), machine(), gitCommit(), *threads, *connections, *duration, *rounds)
	b.WriteString("| target | scenario | req/s | p50 ms | p99 ms | errors | vs nginx | vs sessionproxy |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range pipelineScenarios {
		ng := summarize("nginx", s.Path, runs["nginx|"+s.Path])
		sp := summarize("sessionproxy", s.Path, runs["sessionproxy|"+s.Path])
		for _, t := range targets {
			name := s.Name
			if t.key == pipelineTarget {
				name = strings.Replace(name, " ", "p ", 1) + " (pipeline 8)"
			}
			r := summarize(t.name, s.Path, runs[t.name+"|"+s.Path])
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %.2f | %d | %.2f (p99 %.2f) | %.2f (p99 %.2f) |\n",
				t.name, name, r.RPS, r.P50, r.P99, r.Errors, r.RPS/ng.RPS, r.P99/ng.P99, r.RPS/sp.RPS, r.P99/sp.P99)
		}
	}
	// Paired by round: the spread the medians hide.
	b.WriteString("\nPipelined over non-pipelined req/s, round by round:")
	for _, s := range pipelineScenarios {
		fmt.Fprintf(&b, " %s:", s.Path)
		on, off := runs["sessionproxy pipeline 8|"+s.Path], runs["sessionproxy|"+s.Path]
		for i := range on {
			fmt.Fprintf(&b, " %.2f", on[i].RPS/off[i].RPS)
		}
		b.WriteString(";")
	}
	b.WriteString("\n")
	return b.String()
}
