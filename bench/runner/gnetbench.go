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

// The event-loop comparison (-gnet): the plain path through nginx,
// sessionproxy's "hot" instance, thinproxy and gnetproxy (protos.go), in
// interleaved rounds of wrk, with the ratios the rule needs: an
// event-loop front end is adopted only if it beats the current path by at
// least 10% in the same run.
//
//	make bench-wrk ARGS="-gnet -rounds 5 -duration 5s"

var gnetMode = flag.Bool("gnet", false, "compare the gnet event-loop prototype on the plain path (gnetbench.go) instead of the full comparison")

func runGnet() int {
	if *rounds < 3 {
		log.Print("runner: -rounds must be at least 3")
		return 1
	}
	ensureTools()
	e := &env{sp: map[string]string{}}
	defer e.stop()
	e.start()
	probes := e.startProbes()
	targets := [][2]string{{"nginx", e.nginx}, {"sessionproxy", e.sp["hot"]}}
	for _, p := range probes {
		targets = append(targets, [2]string{p.name, p.addr})
	}
	log.Printf("warming up")
	for _, t := range targets {
		e.wrk(t[1], "/plain", 2*time.Second)
	}
	runs := map[string][]result{}
	for r := 1; r <= *rounds; r++ {
		log.Printf("round %d of %d", r, *rounds)
		for _, t := range targets {
			runs[t[0]] = append(runs[t[0]], e.wrk(t[1], "/plain", *duration))
		}
	}
	md := gnetMarkdown(targets, runs)
	fmt.Print(md)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Print(err)
		return 1
	}
	file := filepath.Join(*outDir, "gnet-"+time.Now().UTC().Format("20060102-150405")+".md")
	if err := os.WriteFile(file, []byte(md), 0o644); err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("wrote %s", file)
	return 0
}

// gnetMarkdown is the medians table, then each round's req/s and the
// paired ratios of gnetproxy to the current path and to the thin proxy.
func gnetMarkdown(targets [][2]string, runs map[string][]result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Event-loop front end, plain path (/plain), measured %s on %s, commit %s; "+
		"wrk -t%d -c%d -d%s, %d interleaved rounds (nginx, sessionproxy, thinproxy, gnetproxy in turn), medians.\n\n",
		time.Now().UTC().Format(time.RFC3339), machine(), gitCommit(), *threads, *connections, *duration, *rounds)
	b.WriteString("| target | req/s | p50 ms | p99 ms | errors | / nginx | / sessionproxy |\n|---|---:|---:|---:|---:|---:|---:|\n")
	rows := map[string]row{}
	for _, t := range targets {
		rows[t[0]] = summarize(t[0], "plain", runs[t[0]])
	}
	for _, t := range targets {
		r := rows[t[0]]
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %d | %.2f | %.2f |\n", t[0], r.RPS, r.P50, r.P99, r.Errors,
			r.RPS/rows["nginx"].RPS, r.RPS/rows["sessionproxy"].RPS)
	}
	b.WriteString("\nPer round, req/s (p99 ms), and the paired ratios of the round:\n\n| round |")
	for _, t := range targets {
		fmt.Fprintf(&b, " %s |", t[0])
	}
	b.WriteString(" gnet / sessionproxy | gnet / thin | thin / sessionproxy |\n|---|")
	for range len(targets) + 3 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	var gs, gt, ts []float64
	for i := range runs["nginx"] {
		fmt.Fprintf(&b, "| %d |", i+1)
		for _, t := range targets {
			r := runs[t[0]][i]
			fmt.Fprintf(&b, " %.0f (%.2f) |", r.RPS, float64(r.P99)/1000)
		}
		g, s, th := runs["gnetproxy"][i].RPS, runs["sessionproxy"][i].RPS, runs["thinproxy"][i].RPS
		gs, gt, ts = append(gs, g/s), append(gt, g/th), append(ts, th/s)
		fmt.Fprintf(&b, " %.2f | %.2f | %.2f |\n", g/s, g/th, th/s)
	}
	fmt.Fprintf(&b, "| median | | | | | **%.2f** | %.2f | %.2f |\n", median(gs), median(gt), median(ts))
	verdict := "below"
	if median(gs) >= 1.10 {
		verdict = "at or above"
	}
	fmt.Fprintf(&b, "\nRule: adopted only at >= 1.10x the current path in the same run; the paired median is %.2fx, %s it.\n", median(gs), verdict)
	return b.String()
}
