package main

import (
	"slices"
	"strings"
	"testing"
)

func TestPassThroughScenarios(t *testing.T) {
	got := passThroughScenarios(scenarios)
	want := []scenario{
		{Name: "2,4 /read, passed through", Path: "/read"},
		{Name: "3,3b /write, passed through", Path: "/write"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestAnchorRunsEveryScenario: HAProxy and the thin proxy run every
// session path, and the pipelined instances every sync scenario, each
// against its own instance; anchorKeys gives a row for each, HAProxy's together.
func TestAnchorRunsEveryScenario(t *testing.T) {
	e := &env{sp: map[string]string{pipelineTarget: "P", coldPipelineTarget: "PC"}}
	e.anchors = anchors{haproxy: "H", thin: "T", classic: "C"}
	runs := e.anchorRuns()
	has := map[string][3]string{}
	for _, r := range runs {
		has[r[0]] = r
	}
	for key, want := range map[string][2]string{
		"haproxy|1 plain proxy":                             {"H", "/plain"},
		"haproxy|2,4 /read, passed through":                 {"H", "/read"},
		"haproxy|3,3b /write, passed through":               {"H", "/write"},
		"thinproxy|1 plain proxy":                           {"T", "/plain"},
		"thinproxy|2,4 /read, passed through":               {"T", "/read"},
		"thinproxy|3,3b /write, passed through":             {"T", "/write"},
		pipelineRow + "|1 plain proxy":                      {"P", "/plain"},
		pipelineRow + "|2 session read (local hit)":         {"P", "/read"},
		pipelineRow + "|3 session write (sync, 2 replicas)": {"P", "/write"},
		pipelineRow + "|4 cold read (no local tier)":        {"PC", "/read"},
		"classic|2 session read":                            {"C", "/read"},
		"classic|3 session write (sync, 2 copies)":          {"C", "/write"},
	} {
		r, ok := has[key]
		if !ok {
			t.Errorf("no run %q", key)
			continue
		}
		if r[1] != want[0] || r[2] != want[1] {
			t.Errorf("%s: %s %s, want %s %s", key, r[1], r[2], want[0], want[1])
		}
	}
	results := map[string][]result{}
	for _, r := range runs {
		results[r[0]] = []result{{Requests: 1}}
	}
	var keys []string
	for _, r := range runs {
		keys = append(keys, r[0])
	}
	got := anchorKeys(results)
	if len(got) > 2 && got[2] != "haproxy|2,4 /read, passed through" {
		t.Errorf("the table's third anchor row is %q, want HAProxy's rows together", got[2])
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("anchorKeys:\n%s\nwant every run's:\n%s", strings.Join(got, "\n"), strings.Join(keys, "\n"))
	}
	// Without the cold pipelined instance (the -pipeline mode's env) its
	// row is not run.
	delete(e.sp, coldPipelineTarget)
	for _, r := range e.anchorRuns() {
		if r[0] == pipelineRow+"|4 cold read (no local tier)" {
			t.Error("a pipelined cold read without its instance")
		}
	}
}

func TestFindScenario(t *testing.T) {
	rows := []row{
		{Target: "haproxy", Scenario: "1 plain proxy", CPU: 1},
		{Target: "haproxy", Scenario: "2,4 /read, passed through", CPU: 2},
		{Target: "haproxy", Scenario: "3,3b /write, passed through", CPU: 3},
		{Target: "sessionproxy", Scenario: "3b session write (async)", CPU: 4},
		{Target: "sessionproxy", Scenario: "3 session write (sync, 2 replicas)", CPU: 5},
	}
	for _, c := range []struct {
		target, prefix string
		want           float64
	}{
		{"haproxy", "1 ", 1}, {"haproxy", "2 ", 2}, {"haproxy", "4 ", 2}, {"haproxy", "3 ", 3}, {"haproxy", "3b ", 3},
		{"sessionproxy", "3 ", 5}, // "3b" is not scenario 3
		{"haproxy", "5 ", 0},
		{"thinproxy", "2 ", 0},
	} {
		r := findScenario(rows, c.target, c.prefix)
		got := 0.0
		if r != nil {
			got = r.CPU
		}
		if got != c.want {
			t.Errorf("%s %q: got %v, want %v", c.target, c.prefix, got, c.want)
		}
	}
}
