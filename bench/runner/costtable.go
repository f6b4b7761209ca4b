package main

import (
	"fmt"
	"strings"
)

// Issue #30's measure: CPU time per request of each proxy's own processes,
// over nginx's plain proxy in the same run, and of the whole stack (proxy,
// backends, memcached) over the classic stack's (nginx in front of
// backends that keep their sessions in memcached themselves) in the
// same session scenario.

// classicFor is the classic stack's row a session row's whole stack
// compares with: a write with the classic write, a read (hot or cold)
// with the classic read; nil for the plain path.
func classicFor(rows []row, scenario string) *row {
	switch {
	case strings.HasPrefix(scenario, "3"):
		return find(rows, "classic", "3 ")
	case strings.HasPrefix(scenario, "2 "), strings.HasPrefix(scenario, "4 "), strings.HasPrefix(scenario, "T2 "):
		return find(rows, "classic", "2 ")
	}
	return nil
}

// sessionStack says whether a row's whole stack is one that keeps sessions:
// sessionproxy's instances and the classic stack. nginx, HAProxy and the
// thin proxy on a session path only pass it through.
func sessionStack(target string) bool {
	return strings.HasPrefix(target, "sessionproxy") || target == "classic"
}

// fillRatios sets each row's CPURatio (its proxy CPU over nginx's plain
// proxy's) and StackRatio (its whole stack's over the classic stack's in
// its scenario; only for stacks that keep sessions). With runs, each is
// the median of the rounds' ratios, each round's run over the reference's
// run of the same round, so that the load of the moment, which moves
// both, cancels; a row without runs gets the ratio of the medians.
func fillRatios(rows []row, runs map[string][]result) {
	ngx := find(rows, "nginx", "1 ")
	cpu := func(r result) float64 { return r.CPU }
	stack := func(r result) float64 { return r.StackCPU }
	for i := range rows {
		r := &rows[i]
		own := runs[r.Target+"|"+r.Scenario]
		if ngx != nil && r.CPU > 0 {
			r.CPURatio = pairedOr(runs["nginx|"+ngx.Scenario], own, cpu, ratio(r.CPU, ngx.CPU))
		}
		if c := classicFor(rows, r.Scenario); c != nil && sessionStack(r.Target) && r.StackCPU > 0 {
			r.StackRatio = pairedOr(runs[c.Target+"|"+c.Scenario], own, stack, ratio(r.StackCPU, c.StackCPU))
		}
	}
}

// pairedOr is the median of b's over a's per round when both have rounds
// with f measured, else or.
func pairedOr(a, b []result, f func(result) float64, or float64) float64 {
	var xs []float64
	for _, x := range pairedRatios(a, b, f) {
		if x > 0 {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return or
	}
	return median(xs)
}

// targetRows are issue #30's targets with what this run reached: proxy
// CPU per request over nginx's plain, whole stack over the classic stack's,
// and p99 at the fixed rate over nginx's.
func targetRows(rows []row, fixed []fixedRow) []targetRow {
	var out []targetRow
	ngx := find(rows, "nginx", "1 ")
	add := func(scenario, against string, reached, target float64) {
		if reached == 0 {
			return // not measured in this run
		}
		out = append(out, targetRow{Scenario: scenario, Against: against, Reached: reached, Target: target, AtMost: true, Met: target == 0 || reached <= target})
	}
	cpu := func(scenario string, r *row, target float64) {
		if r != nil && ngx != nil {
			add(scenario, "proxy CPU/req × nginx plain", r.CPURatio, target)
		}
	}
	stack := func(scenario string, r *row, target float64) {
		if r != nil {
			add(scenario, "whole stack CPU/req × classic", r.StackRatio, target)
		}
	}
	sp := func(prefix string) *row { return find(rows, "sessionproxy", prefix) }
	pp := func(prefix string) *row { return find(rows, pipelineRow, prefix) }
	cpu("plain proxy", sp("1 "), 1.0)
	cpu("plain proxy, `pipeline: 8`", pp("1 "), 0.85)
	cpu("plain proxy, HAProxy", find(rows, "haproxy", "1 "), 0)
	cpu("plain proxy, thin fasthttp proxy", find(rows, "thinproxy", "1 "), 0)
	cpu("session read, hot tier", sp("2 "), 1.1)
	stack("session read, hot tier", sp("2 "), 0.3)
	cpu("session read, hot tier, `pipeline: 8`", pp("2 "), 1.1)
	stack("session read, hot tier, `pipeline: 8`", pp("2 "), 0.3)
	cpu("session write, sync, 2 replicas", sp("3 "), 1.6)
	stack("session write, sync, 2 replicas", sp("3 "), 0.35)
	cpu("session write, sync, 2 replicas, `pipeline: 8`", pp("3 "), 1.6)
	stack("session write, sync, 2 replicas, `pipeline: 8`", pp("3 "), 0.35)
	cpu("cold read", sp("4 "), 1.4)
	stack("cold read", sp("4 "), 0.35)
	cpu("cold read, `pipeline: 8`", pp("4 "), 1.4)
	stack("cold read, `pipeline: 8`", pp("4 "), 0.35)
	cpu("classic stack's front nginx, session read", find(rows, "classic", "2 "), 0)
	for _, f := range fixed {
		if f.Target == "sessionproxy" || f.Target == pipelineRow {
			name := "p99 at the fixed rate, " + f.Scenario
			if f.Target == pipelineRow {
				name += ", `pipeline: 8`"
			}
			add(name, "nginx's p99 at the same rate", f.P99Ratio, 1)
		}
	}
	return out
}

// costMarkdown is the main table: per target and scenario, the medians of
// what a request cost and what wrk measured.
func (t table) costMarkdown(b *strings.Builder) {
	fmt.Fprintf(b, "Measured %s on %s, commit %s; %s.\n", t.Date, t.Machine, t.Commit, t.Config)
	sys := sysSource()
	for _, r := range t.Rows {
		if r.CPU > 0 && !r.SysPerf {
			sys = "syscr+syscw of /proc/<pid>/io where perf did not count (a lower bound)"
			break
		}
	}
	b.WriteString("Proxy CPU is utime+stime of the proxy's own processes (nginx: master and workers) from /proc over each wrk run, ÷ the requests wrk counted; " +
		"whole stack adds the backends and memcached (for the classic stack: its nginx, its two session-keeping backends, memcached); " +
		"context switches are summed over the proxy's threads; system calls: " + sys + ". " +
		"× nginx plain: over nginx's plain proxy CPU; × classic: whole stack over the classic stack's in the same session scenario (reads against its read, writes against its write); both are medians of the per-round ratios (each run over the reference's run in the same round). " +
		"req/s and its ratio are secondary: they move with how the two cores are shared.\n\n")
	b.WriteString("| target | scenario | proxy CPU µs/req | × nginx plain | whole stack µs/req | × classic | ctx sw/req | syscalls/req | req/s | req/s × nginx plain | p50 ms | p99 ms | errors |\n" +
		"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	erratic := false
	for _, r := range t.Rows {
		name := r.Scenario
		if r.Errors*100 > r.Requests && r.Requests > 0 {
			name, erratic = name+" ⚠", true
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %d |\n", r.Target, name,
			num(r.CPU, 1), num(r.CPURatio, 2), num(r.StackCPU, 1), num(r.StackRatio, 2), num(r.Ctx, 2), num(r.Sys, 2),
			r.RPS, r.Ratio, r.P50, r.P99, r.Errors)
	}
	if erratic {
		b.WriteString("\n⚠ More than 1% of the requests failed: a failed request costs less than a served one, so the row's CPU per request flatters it.\n")
	}
}

// num prints x with prec decimals, or nothing for 0 (not measured).
func num(x float64, prec int) string {
	if x == 0 {
		return ""
	}
	return fmt.Sprintf("%.*f", prec, x)
}
