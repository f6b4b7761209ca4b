package main

import (
	"flag"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The fixed-rate latency table (issue #30): p50, p99 and p99.9 of nginx
// and sessionproxy at one constant request rate, half of nginx's plain
// maximum measured by wrk in the same run. wrk is closed-loop: each
// connection sends its next request when the last is answered, so at
// saturation its tail is queueing at the slowest component, not the
// proxy. Here the load is open-loop: requests are due at fixed times
// whether or not earlier ones were answered.

var (
	fixedRounds   = flag.Int("fixed-rounds", 2, "interleaved rounds of the fixed-rate latency table (0: none)")
	fixedDuration = flag.Duration("fixed-duration", 5*time.Second, "recorded length of each fixed-rate run (after 1 s of warm-up)")
	fixedFraction = flag.Float64("fixed-fraction", 0.5, "the fixed rate as a fraction of nginx's plain req/s in this run")
)

// openLoopOptions configure one open-loop run.
type openLoopOptions struct {
	Addr, Path string
	Rate       float64 // requests per second
	Conns      int     // keep-alive connections, one session cookie each
	Warmup     time.Duration
	Duration   time.Duration
}

// openLoopResult is one run's latency distribution.
type openLoopResult struct {
	Requests, Errors int64
	All              int64   // answered, warm-up included: the meter's window
	Late             int64   // requests sent after their due time because every connection was busy
	Achieved         float64 // requests answered per second of the recorded window
	P50, P99, P999   float64 // ms
	costs
}

// schedule is when request i is due: i/rate after start.
func schedule(start time.Time, rate float64, i int64) time.Time {
	return start.Add(time.Duration(float64(i) * 1e9 / rate))
}

// openLoop sends o.Rate requests a second for o.Warmup+o.Duration over
// o.Conns connections. Request i is due at start + i/rate; the next free
// connection takes it. A request sent on time is timed from when it was
// sent (the Go timer's lateness is the generator's, not the proxy's); one
// sent late because every connection was still waiting for an answer is
// timed from its due time, so that the queueing a slow proxy causes counts
// (wrk2's "coordinated omission" correction).
func openLoop(o openLoopOptions) openLoopResult {
	var hist second
	var late, errs, all atomic.Int64
	start := time.Now().Add(20 * time.Millisecond)
	recordFrom := start.Add(o.Warmup)
	total := int64(o.Rate * (o.Warmup + o.Duration).Seconds())
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &fasthttp.HostClient{Addr: o.Addr, MaxConns: 1, MaxIdemponentCallAttempts: 1,
				RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) { return false, false }}
			defer hc.CloseIdleConnections()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var cookie []byte
			uri := "http://" + o.Addr + o.Path
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				due := schedule(start, o.Rate, i)
				from := due
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
					from = time.Now()
				} else if wait < -time.Millisecond && !due.Before(recordFrom) {
					late.Add(1)
				}
				req.Reset()
				req.SetRequestURI(uri)
				if cookie != nil {
					req.Header.SetBytesV("Cookie", cookie)
				}
				err := hc.DoTimeout(req, resp, 5*time.Second)
				lat := time.Since(from)
				all.Add(1)
				if err == nil {
					cookie = firstCookie(resp, cookie)
				}
				if due.Before(recordFrom) {
					continue
				}
				hist.requests.Add(1)
				hist.hist[histIndex(uint64(lat.Microseconds()))].Add(1)
				if err != nil || resp.StatusCode() < 200 || resp.StatusCode() > 299 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	n := hist.requests.Load()
	return openLoopResult{Requests: n, Errors: errs.Load(), Late: late.Load(), All: all.Load(),
		Achieved: float64(n) / o.Duration.Seconds(),
		P50:      hist.percentile(0.50), P99: hist.percentile(0.99), P999: hist.percentile(0.999)}
}

// firstCookie keeps the session cookie as bench/session.lua does: the
// "name=value" of the first Set-Cookie with a value replaces what the
// connection held.
func firstCookie(resp *fasthttp.Response, held []byte) []byte {
	for _, value := range resp.Header.Cookies() {
		nv, _, _ := strings.Cut(string(value), ";")
		if name, v, ok := strings.Cut(nv, "="); ok && name != "" && v != "" {
			return append(held[:0], strings.TrimSpace(nv)...)
		}
		break
	}
	return held
}

// fixedTarget is a front end measured at the fixed rate in one scenario.
type fixedTarget struct {
	Target, Scenario, Addr, Path string
}

// fixedTargets are nginx and sessionproxy in each scenario, the pipelined
// instance on the plain path and the classic stack on its two.
func (e *env) fixedTargets() []fixedTarget {
	var out []fixedTarget
	for _, s := range scenarios {
		if s.Path == "/mib" || s.Target == "async" {
			continue
		}
		out = append(out, fixedTarget{"nginx", s.Name, e.nginx, s.Path}, fixedTarget{"sessionproxy", s.Name, e.sp[s.Target], s.Path})
	}
	if addr, ok := e.sp[pipelineTarget]; ok {
		out = append(out, fixedTarget{pipelineRow, scenarios[0].Name, addr, "/plain"})
	}
	if a := e.anchors.classic; a != "" {
		out = append(out, fixedTarget{"classic", "2 session read", a, "/read"}, fixedTarget{"classic", "3 session write (sync, 2 copies)", a, "/write"})
	}
	return out
}

// fixedRow is a target's medians over the fixed-rate rounds.
type fixedRow struct {
	Target, Scenario    string
	Rate, Achieved      float64
	P50, P99, P999, CPU float64
	Errors, Late        int64
	P99Ratio            float64 // over nginx's p99 in the same scenario
}

// runFixedRate measures every fixed target at rate, in interleaved rounds.
func (e *env) runFixedRate(rate float64) []fixedRow {
	if *fixedRounds <= 0 || rate <= 0 {
		return nil
	}
	ts := e.fixedTargets()
	runs := map[int][]openLoopResult{}
	for r := 1; r <= *fixedRounds; r++ {
		log.Printf("fixed rate %.0f req/s, round %d of %d", rate, r, *fixedRounds)
		for i, t := range ts {
			var m *meter
			if g, ok := e.meters[t.Addr]; ok {
				m = startMeter(g.proxy, nil, false)
			}
			res := openLoop(openLoopOptions{Addr: t.Addr, Path: sized(t.Path), Rate: rate, Conns: *connections,
				Warmup: time.Second, Duration: *fixedDuration})
			if m != nil {
				// The meter's window includes the warm-up second: CPU
				// over every request answered in it.
				res.costs = m.stop(res.All)
			}
			runs[i] = append(runs[i], res)
		}
	}
	var rows []fixedRow
	for i, t := range ts {
		var p50, p99, p999, ach, cpu []float64
		var errs, late int64
		for _, r := range runs[i] {
			p50, p99, p999 = append(p50, r.P50), append(p99, r.P99), append(p999, r.P999)
			ach, cpu = append(ach, r.Achieved), append(cpu, r.CPU)
			errs += r.Errors
			late += r.Late
		}
		rows = append(rows, fixedRow{Target: t.Target, Scenario: t.Scenario, Rate: rate, Achieved: median(ach),
			P50: median(p50), P99: median(p99), P999: median(p999), CPU: median(cpu), Errors: errs, Late: late})
	}
	for i := range rows {
		for _, n := range rows {
			if n.Target == "nginx" && n.Scenario[:2] == rows[i].Scenario[:2] {
				rows[i].P99Ratio = ratio(rows[i].P99, n.P99)
			}
		}
	}
	return rows
}

func fixedMarkdown(b *strings.Builder, rows []fixedRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\nFixed rate, open loop: %.0f req/s (%.0f%% of nginx's plain req/s above) over %d connections, %s recorded after 1 s of warm-up, %d interleaved rounds, medians. "+
		"A request is timed from when it was sent, or from when it was due if every connection was busy then (late). CPU µs/req is the proxy's at this rate.\n\n",
		rows[0].Rate, *fixedFraction*100, *connections, *fixedDuration, *fixedRounds)
	b.WriteString("| target | scenario | achieved req/s | p50 ms | p99 ms | p99.9 ms | p99 × nginx | CPU µs/req | errors | late |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %.0f | %.3f | %.3f | %.3f | %.2f | %.1f | %d | %d |\n",
			r.Target, r.Scenario, r.Achieved, r.P50, r.P99, r.P999, r.P99Ratio, r.CPU, r.Errors, r.Late)
	}
}
