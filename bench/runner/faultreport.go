package main

import (
	"encoding/json"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// faultReport is what a fault run writes: fault-latest.json, and the
// table, events and summary of fault-latest.md.
type faultReport struct {
	Date, Commit, Machine, Config string
	LoadBefore, LoadAfter         string     // load averages: the machine is shared
	Runs                          []faultRun // one per target, drawn on the same chart
}

// faultRun is one target's run.
type faultRun struct {
	Target       string        `json:"target"`
	Summary      faultSummary  `json:"summary"`
	Check        checkResult   `json:"check"`
	Catchups     []catchup     `json:"catchups"`
	Events       []event       `json:"events"`
	Seconds      []secondStats `json:"seconds"`
	StatusErrors int           `json:"status_errors"` // failed reads of /status
	FinalStatus  *targetStatus `json:"final_status,omitempty"`
	Clients      []clientState `json:"clients"`
	ProxyLog     string        `json:"proxy_log"` // node and backend state changes, in the proxies' words
}

// faultSummary holds the numbers the issue asks for: how deep the dip,
// how long the recovery.
type faultSummary struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	Stale    int64 `json:"stale"`

	PreFaultMedian  float64 `json:"pre_fault_median_rps"`
	PreFaultP99     float64 `json:"pre_fault_median_p99_ms"`
	PreFaultSeconds int     `json:"pre_fault_seconds"`

	DeepestRPS float64 `json:"deepest_rps"`
	DeepestPct float64 `json:"deepest_pct"` // of the pre-fault median
	DeepestAt  int     `json:"deepest_at"`

	Faults []faultImpact `json:"faults"`
}

// faultImpact is what one step of the timeline cost, in its window: its
// own second and the next ones, up to faultWindow seconds and not past the
// next step's second.
type faultImpact struct {
	Step      string  `json:"step"`
	At        float64 `json:"at"`
	LowestRPS float64 `json:"lowest_rps"`
	LowestPct float64 `json:"lowest_pct"`
	LowestAt  int     `json:"lowest_at"`
	// RecoveredAfter is the time from the step to the start of the first
	// second from which two seconds in a row are within 10% of the
	// pre-fault median: an upper bound, at one-second resolution. 0: no
	// second fell below; -1: not recovered by the end of the run.
	RecoveredAfter float64 `json:"recovered_after_s"`
	Errors         int64   `json:"errors"`
	MaxP99         float64 `json:"max_p99_ms"`
	Max            float64 `json:"max_ms"`
}

// recoveryBand is how close to the pre-fault median req/s must be to count
// as recovered (the "within 10%").
const recoveryBand = 0.9

// faultWindow bounds the seconds a step's dip is looked for in: on this
// shared machine a second 20% down with no fault at all happens (see the
// pre-fault seconds), and blaming it on a fault ten seconds earlier would
// overstate the fault.
const faultWindow = 3

func summarizeFault(r faultRun, steps []step) faultSummary {
	var s faultSummary
	secs := r.Seconds
	for _, b := range secs {
		s.Requests += b.Requests
		s.Errors += b.Errors
		s.Stale += b.Stale
	}
	first := len(secs)
	if len(steps) > 0 {
		first = min(first, int(steps[0].at/time.Second))
	}
	if first == 0 {
		return s
	}
	var rps, p99 []float64
	for _, b := range secs[:first] {
		rps = append(rps, float64(b.Requests))
		p99 = append(p99, b.P99)
	}
	s.PreFaultMedian, s.PreFaultP99, s.PreFaultSeconds = median(rps), median(p99), first
	s.DeepestRPS, s.DeepestAt = math.Inf(1), first
	for i := first; i < len(secs); i++ {
		if v := float64(secs[i].Requests); v < s.DeepestRPS {
			s.DeepestRPS, s.DeepestAt = v, i
		}
	}
	if math.IsInf(s.DeepestRPS, 1) {
		s.DeepestRPS = 0
	}
	s.DeepestPct = pct(s.DeepestRPS, s.PreFaultMedian)
	for i, st := range steps {
		at := actualTime(r.Events, st)
		from := int(at)
		to := from + faultWindow
		if i+1 < len(steps) {
			to = min(to, max(from+1, int(actualTime(r.Events, steps[i+1]))))
		}
		from, to = min(from, len(secs)), min(to, len(secs))
		fi := faultImpact{Step: st.name, At: at, LowestRPS: math.Inf(1), RecoveredAfter: -1}
		for j := from; j < to; j++ {
			b := secs[j]
			if v := float64(b.Requests); v < fi.LowestRPS {
				fi.LowestRPS, fi.LowestAt = v, j
			}
			fi.Errors += b.Errors
			fi.MaxP99 = max(fi.MaxP99, b.P99)
			fi.Max = max(fi.Max, b.Max)
		}
		if math.IsInf(fi.LowestRPS, 1) {
			fi.LowestRPS = 0
		}
		fi.LowestPct = pct(fi.LowestRPS, s.PreFaultMedian)
		ok := func(j int) bool { return j >= len(secs) || float64(secs[j].Requests) >= recoveryBand*s.PreFaultMedian }
		for j := from; j < len(secs); j++ {
			if ok(j) && ok(j+1) {
				fi.RecoveredAfter = 0
				if j > from {
					fi.RecoveredAfter = float64(j) - at
				}
				break
			}
		}
		s.Faults = append(s.Faults, fi)
	}
	return s
}

// actualTime is when a step ran (its event), else when it was due.
func actualTime(events []event, st step) float64 {
	for _, e := range events {
		if e.Source == "action" && e.Name == st.name {
			return e.T
		}
	}
	return st.at.Seconds()
}

func pct(v, of float64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * v / of
}

func (rep faultReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fault scenario\n\nMeasured %s on %s, commit %s; %s. Load average %s before, %s after.\n",
		rep.Date, rep.Machine, rep.Commit, rep.Config, rep.LoadBefore, rep.LoadAfter)
	for _, r := range rep.Runs {
		r.markdown(&b)
	}
	return b.String()
}

func (r faultRun) markdown(b *strings.Builder) {
	s, c := r.Summary, r.Check
	fmt.Fprintf(b, "\n## %s\n\n", r.Target)
	fmt.Fprintf(b, "**Sessions lost: %d** of %d, read back through a fresh proxy from n2 alone after n1 was killed again at the end", c.Lost, c.Sessions)
	if c.Unverified > 0 {
		fmt.Fprintf(b, " (**%d could not be read**)", c.Unverified)
	}
	fmt.Fprintf(b, "; through the proxy that served the run: %d kept, %d lost, %d unread.", c.OriginalKept, c.OriginalLost, c.OriginalUnver)
	if !c.NodesUp {
		fmt.Fprintf(b, " **Not every node was up after waiting %d ms** before n1 was killed.", c.WaitedMs)
	}
	if c.FreshProxyNote != "" {
		fmt.Fprintf(b, " Fresh proxy: %s.", c.FreshProxyNote)
	}
	fmt.Fprintf(b, "\nAnswers during the run whose session had lost the client's last write: **%d**.\n", s.Stale)
	for _, d := range c.Details {
		fmt.Fprintf(b, "- %s\n", d)
	}
	fmt.Fprintf(b, "\n%d requests, %d errors. Pre-fault median %.0f req/s, p99 %.2f ms (seconds 0 to %d). ",
		s.Requests, s.Errors, s.PreFaultMedian, s.PreFaultP99, s.PreFaultSeconds-1)
	fmt.Fprintf(b, "Deepest dip: %.0f req/s at t=%d s, %.0f%% of the pre-fault median.\n\n", s.DeepestRPS, s.DeepestAt, s.DeepestPct)
	b.WriteString("| step | at s | lowest req/s | % of median | back within 10% after | errors | max p99 ms | max ms |\n|---|---:|---:|---:|---|---:|---:|---:|\n")
	for _, f := range s.Faults {
		fmt.Fprintf(b, "| %s | %.2f | %.0f (t=%d) | %.0f%% | %s | %d | %.1f | %.1f |\n",
			f.Step, f.At, f.LowestRPS, f.LowestAt, f.LowestPct, recovery(f.RecoveredAfter), f.Errors, f.MaxP99, f.Max)
	}
	fmt.Fprintf(b, "\nA step's window is its own second and the next ones, %d at most and not past the next step; recovery is counted from the step to the first of two seconds in a row within 10%% of the pre-fault median, at one-second resolution.\n", faultWindow)
	if len(r.Catchups) > 0 {
		b.WriteString("\nCatch-ups, from /status: ")
		for i, cu := range r.Catchups {
			if i > 0 {
				b.WriteString("; ")
			}
			seen := ""
			if !cu.CatchingUpSeen {
				seen = ", catching_up not seen by the poll"
			}
			fmt.Fprintf(b, "%s up at %.2f s after a %d ms catch-up%s (handoff_replayed %d, copied %d so far)",
				cu.Node, cu.UpAt, cu.Ms, seen, cu.Replayed, cu.Copied)
		}
		b.WriteString(".\n")
	}
	if r.StatusErrors > 0 {
		fmt.Fprintf(b, "\n%d reads of /status failed.\n", r.StatusErrors)
	}

	b.WriteString("\n### Events\n\n| t s | event | source | note |\n|---:|---|---|---|\n")
	for _, e := range r.Events {
		fmt.Fprintf(b, "| %.2f | %s | %s | %s |\n", e.T, e.Name, e.Source, e.Note)
	}
	b.WriteString("\n### Per second\n\n| t | req/s | p50 ms | p99 ms | max ms | errors | stale | what happened |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, sec := range r.Seconds {
		var notes []string
		for _, e := range r.Events {
			if int(math.Floor(e.T)) == sec.T {
				notes = append(notes, e.Name)
			}
		}
		for _, k := range sortedKeys(sec.Kinds) {
			notes = append(notes, fmt.Sprintf("%d× %s", sec.Kinds[k], k))
		}
		fmt.Fprintf(b, "| %d | %d | %.2f | %.2f | %.1f | %d | %d | %s |\n", sec.T, sec.Requests, sec.P50, sec.P99, sec.Max, sec.Errors, sec.Stale, strings.Join(notes, "; "))
	}
	if r.ProxyLog != "" {
		lines := strings.SplitAfter(strings.TrimSuffix(r.ProxyLog, "\n"), "\n")
		b.WriteString("\n### Proxy log\n\nThe proxies' own lines (access log off), evidence for the events above:\n\n```\n")
		if len(lines) > maxLogLines {
			b.WriteString(strings.Join(lines[:maxLogLines], ""))
			fmt.Fprintf(b, "\n… %d more lines in fault-latest.json\n", len(lines)-maxLogLines)
		} else {
			b.WriteString(strings.Join(lines, "") + "\n")
		}
		b.WriteString("```\n")
	}
}

// maxLogLines bounds the proxy log quoted in the markdown; the JSON has it
// all.
const maxLogLines = 60

func recovery(after float64) string {
	switch {
	case after < 0:
		return "not by the end"
	case after == 0:
		return "no second below"
	}
	return fmt.Sprintf("≤ %.1f s", after)
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func writeFaultResults(rep faultReport, md string) error {
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"fault-" + stamp + ".md": []byte(md),
		"fault-latest.md":        []byte(md),
		"fault-latest.json":      js,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(*outDir, name), data, 0o644); err != nil {
			return err
		}
	}
	drawFaultCharts(rep)
	log.Printf("wrote %s", filepath.Join(*outDir, "fault-latest.md"))
	return nil
}

func redrawFault() int {
	var rep faultReport
	data, err := os.ReadFile(filepath.Join(*outDir, "fault-latest.json"))
	if err == nil {
		err = json.Unmarshal(data, &rep)
	}
	if err != nil {
		log.Printf("runner: %v", err)
		return 1
	}
	drawFaultCharts(rep)
	return 0
}

func drawFaultCharts(rep faultReport) {
	for _, name := range []string{"fault-latest.svg", "fault-latest.png"} {
		if err := drawFaultChart(rep, filepath.Join(*outDir, name)); err != nil {
			log.Printf("chart: %v", err)
		}
	}
}
