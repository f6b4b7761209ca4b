package main

import (
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// costRows is a run's medians as buildTable leaves them (CPU in µs).
func costRows() []row {
	return []row{
		{Target: "direct", Scenario: "backend (physical limit)"},
		{Target: "nginx", Scenario: "1 plain proxy", CPU: 20, StackCPU: 45},
		{Target: "sessionproxy", Scenario: "1 plain proxy", CPU: 27, StackCPU: 52},
		{Target: "sessionproxy", Scenario: "2 session read (local hit)", CPU: 30, StackCPU: 60},
		{Target: "sessionproxy", Scenario: "3 session write (sync, 2 replicas)", CPU: 44, StackCPU: 120},
		{Target: "sessionproxy", Scenario: "3b session write (async)", CPU: 40, StackCPU: 110},
		{Target: "sessionproxy", Scenario: "4 cold read (no local tier)", CPU: 38, StackCPU: 90},
		{Target: "nginx", Scenario: "2 session read (local hit)", CPU: 21, StackCPU: 46},
		{Target: "haproxy", Scenario: "1 plain proxy", CPU: 19},
		{Target: "classic", Scenario: "2 session read", CPU: 22, StackCPU: 200},
		{Target: "classic", Scenario: "3 session write (sync, 2 copies)", CPU: 23, StackCPU: 300},
		{Target: pipelineRow, Scenario: "1 plain proxy", CPU: 17},
		{Target: pipelineRow, Scenario: "3 session write (sync, 2 replicas)", CPU: 40, StackCPU: 90},
		{Target: pipelineRow, Scenario: "4 cold read (no local tier)", CPU: 36, StackCPU: 80},
		{Target: "haproxy", Scenario: "3,3b /write, passed through", CPU: 24, StackCPU: 50},
	}
}

// filledRows are costRows with their ratios from the medians (no rounds).
func filledRows() []row {
	rows := costRows()
	fillRatios(rows, nil)
	return rows
}

func TestStackRatio(t *testing.T) {
	rows := filledRows()
	for _, c := range []struct {
		target, scenario string
		want             float64
	}{
		{"sessionproxy", "2 ", 60.0 / 200}, // a hot read against the classic read
		{"sessionproxy", "3 ", 120.0 / 300},
		{"sessionproxy", "3b", 110.0 / 300}, // async writes against the classic write too
		{"sessionproxy", "4 ", 90.0 / 200},  // a cold read against the classic read
		{"sessionproxy", "1 ", 0},           // no classic plain path
		{"nginx", "2 ", 0},                  // nginx only passes a session path through
		{"classic", "3 ", 1},
		{pipelineRow, "3 ", 90.0 / 300}, // the pipelined write against the classic write
		{pipelineRow, "4 ", 80.0 / 200},
		{"haproxy", "3,", 0}, // HAProxy passes sessions through: no whole-stack ratio
	} {
		r := find(rows, c.target, c.scenario)
		if got := r.StackRatio; !near(got, c.want) {
			t.Errorf("%s %s: got %v, want %v", c.target, c.scenario, got, c.want)
		}
	}
}

func TestTargetRows(t *testing.T) {
	fixed := []fixedRow{
		{Target: "nginx", Scenario: "1 plain proxy", P99: 2, P99Ratio: 1},
		{Target: "sessionproxy", Scenario: "1 plain proxy", P99: 1.5, P99Ratio: 0.75},
		{Target: "sessionproxy", Scenario: "3 session write (sync, 2 replicas)", P99: 5, P99Ratio: 2.5},
	}
	got := map[string]targetRow{}
	for _, tr := range targetRows(filledRows(), fixed) {
		got[tr.Scenario+" | "+tr.Against] = tr
	}
	for key, want := range map[string]struct {
		reached, target float64
		met             bool
	}{
		"plain proxy | proxy CPU/req × nginx plain":                                                {27.0 / 20, 1.0, false},
		"plain proxy, `pipeline: 8` | proxy CPU/req × nginx plain":                                 {17.0 / 20, 0.85, true},
		"plain proxy, HAProxy | proxy CPU/req × nginx plain":                                       {19.0 / 20, 0, true},
		"session read, hot tier | proxy CPU/req × nginx plain":                                     {30.0 / 20, 1.1, false},
		"session read, hot tier | whole stack CPU/req × classic":                                   {0.3, 0.3, true},
		"session write, sync, 2 replicas | proxy CPU/req × nginx plain":                            {44.0 / 20, 1.6, false},
		"session write, sync, 2 replicas | whole stack CPU/req × classic":                          {0.4, 0.35, false},
		"cold read | whole stack CPU/req × classic":                                                {0.45, 0.35, false},
		"session write, sync, 2 replicas, `pipeline: 8` | proxy CPU/req × nginx plain":             {40.0 / 20, 1.6, false},
		"session write, sync, 2 replicas, `pipeline: 8` | whole stack CPU/req × classic":           {0.3, 0.35, true},
		"cold read, `pipeline: 8` | proxy CPU/req × nginx plain":                                   {36.0 / 20, 1.4, false},
		"cold read, `pipeline: 8` | whole stack CPU/req × classic":                                 {0.4, 0.35, false},
		"p99 at the fixed rate, 1 plain proxy | nginx's p99 at the same rate":                      {0.75, 1, true},
		"p99 at the fixed rate, 3 session write (sync, 2 replicas) | nginx's p99 at the same rate": {2.5, 1, false},
	} {
		tr, ok := got[key]
		if !ok {
			t.Errorf("no target row %q", key)
			continue
		}
		if !near(tr.Reached, want.reached) || tr.Target != want.target || tr.Met != want.met {
			t.Errorf("%s: got %.3f (target %v, met %v), want %.3f (target %v, met %v)", key, tr.Reached, tr.Target, tr.Met, want.reached, want.target, want.met)
		}
	}
	if _, ok := got["plain proxy, thin fasthttp proxy | proxy CPU/req × nginx plain"]; ok {
		t.Error("a target row for the thin proxy, which this run did not measure")
	}
}

func TestCostMarkdown(t *testing.T) {
	tb := table{Rows: filledRows()}
	var b strings.Builder
	tb.costMarkdown(&b)
	// sessionproxy's write: 44 µs, 2.20× nginx plain, stack 120 µs, 0.40× classic.
	if want := "| sessionproxy | 3 session write (sync, 2 replicas) | 44.0 | 2.20 | 120.0 | 0.40 |"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in\n%s", want, b.String())
	}
}

// TestSchedule checks the open loop's due times: rate r puts request i at
// i/r seconds, whatever happened to the requests before it.
func TestSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	if got := schedule(start, 20000, 40000).Sub(start); got != 2*time.Second {
		t.Errorf("request 40000 at 20000/s: due after %v, want 2s", got)
	}
	if got := schedule(start, 3, 1).Sub(start); got != 333333333*time.Nanosecond {
		t.Errorf("request 1 at 3/s: due after %v", got)
	}
}

// TestOpenLoop runs the generator against a real fasthttp server on
// loopback that sets a session cookie on a request without one: the
// rate must be held, every request answered and timed, and each
// connection must send the cookie it was given from then on.
func TestOpenLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var with, without atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if len(ctx.Request.Header.Cookie("sid")) > 0 {
			with.Add(1)
		} else {
			without.Add(1)
			ctx.Response.Header.Set("Set-Cookie", "sid=abc; Path=/")
		}
		ctx.WriteString("ok")
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	res := openLoop(openLoopOptions{Addr: ln.Addr().String(), Path: "/read", Rate: 2000, Conns: 8,
		Warmup: 200 * time.Millisecond, Duration: time.Second})
	if res.Requests < 1900 || res.Requests > 2100 || res.Errors != 0 {
		t.Errorf("1 s at 2000/s: %d requests recorded, %d errors", res.Requests, res.Errors)
	}
	if res.All != with.Load()+without.Load() || res.All < res.Requests {
		t.Errorf("answered %d, server saw %d", res.All, with.Load()+without.Load())
	}
	if without.Load() > 8 {
		t.Errorf("%d requests came without the cookie; 8 connections need 8", without.Load())
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.P999 < res.P99 {
		t.Errorf("percentiles out of order: %+v", res)
	}
}

// TestPairedRatios: with rounds, a ratio is the median of the rounds'
// ratios, not the ratio of the medians. Round 2 ran while the machine
// was loaded, which doubled both nginx's and sessionproxy's cost.
func TestPairedRatios(t *testing.T) {
	runs := map[string][]result{
		"nginx|1 plain proxy":                     {{costs: costs{CPU: 20}}, {costs: costs{CPU: 40}}, {costs: costs{CPU: 21}}},
		"sessionproxy|1 plain proxy":              {{costs: costs{CPU: 24}}, {costs: costs{CPU: 44}}, {costs: costs{CPU: 42}}},
		"classic|2 session read":                  {{costs: costs{StackCPU: 100}}, {costs: costs{StackCPU: 200}}, {costs: costs{StackCPU: 100}}},
		"sessionproxy|2 session read (local hit)": {{costs: costs{CPU: 1, StackCPU: 30}}, {costs: costs{CPU: 1, StackCPU: 70}}, {costs: costs{CPU: 1, StackCPU: 40}}},
	}
	var rows []row
	for _, k := range []string{"nginx|1 plain proxy", "sessionproxy|1 plain proxy", "classic|2 session read", "sessionproxy|2 session read (local hit)"} {
		target, name, _ := strings.Cut(k, "|")
		rows = append(rows, summarize(target, name, runs[k]))
	}
	fillRatios(rows, runs)
	// Rounds: 24/20 = 1.2, 44/40 = 1.1, 42/21 = 2.0: median 1.2. The
	// medians' ratio would be 42/21 = 2.0.
	if got := find(rows, "sessionproxy", "1 ").CPURatio; !near(got, 1.2) {
		t.Errorf("paired CPU ratio: got %v, want 1.2", got)
	}
	// 0.3, 0.35, 0.4: median 0.35 (the medians' ratio: 40/100 = 0.4).
	if got := find(rows, "sessionproxy", "2 ").StackRatio; !near(got, 0.35) {
		t.Errorf("paired stack ratio: got %v, want 0.35", got)
	}
}
