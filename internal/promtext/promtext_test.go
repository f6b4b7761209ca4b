package promtext

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestWriteGroupsFamiliesAcrossSets: a family whose samples two Sets
// hold is written once, with its declared HELP and TYPE, its samples
// together; a gauge read from a func is typed counter when declared so;
// a histogram's _bucket, _sum and _count stay under its one family.
func TestWriteGroupsFamiliesAcrossSets(t *testing.T) {
	Describe("t_up", Gauge, "Whether it is up.")
	Describe("t_done_total", Counter, "Things done.")
	Describe("t_seconds", Histogram, "How long.")
	a, b := metrics.NewSet(), metrics.NewSet()
	a.NewGauge(`t_up{n="1"}`, func() float64 { return 1 })
	a.NewGauge(`t_done_total{n="1"}`, func() float64 { return 3 })
	a.NewPrometheusHistogram(`t_seconds{n="1"}`).Update(0.2)
	b.NewGauge(`t_up{n="2"}`, func() float64 { return 0 })
	b.NewPrometheusHistogram(`t_seconds{n="2"}`).Update(2)
	var out bytes.Buffer
	if err := Write(&out, a.WritePrometheus, b.WritePrometheus); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	for _, want := range []string{
		"# HELP t_up Whether it is up.\n# TYPE t_up gauge\nt_up{n=\"1\"} 1\nt_up{n=\"2\"} 0\n",
		"# HELP t_done_total Things done.\n# TYPE t_done_total counter\nt_done_total{n=\"1\"} 3\n",
		"# HELP t_seconds How long.\n# TYPE t_seconds histogram\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}
	if n := strings.Count(page, "# TYPE t_seconds "); n != 1 {
		t.Errorf("t_seconds typed %d times:\n%s", n, page)
	}
	// The histogram's samples follow its TYPE line, none after another family's.
	i := strings.Index(page, "# TYPE t_seconds ")
	rest := page[i:]
	if j := strings.Index(rest[1:], "# "); j >= 0 {
		rest = rest[:j+1]
	}
	for _, want := range []string{`t_seconds_bucket{n="1",le=`, `t_seconds_bucket{n="2",le=`, `t_seconds_sum{n="2"}`, `t_seconds_count{n="1"} 1`} {
		if !strings.Contains(rest, want) {
			t.Errorf("%s is not under t_seconds' TYPE:\n%s", want, page)
		}
	}
}

// TestWriteFixesLibraryProcessMetrics: the library's process metrics come
// out with a help text, the summary's samples under one family, and the
// counts promtool refuses renamed or retyped.
func TestWriteFixesLibraryProcessMetrics(t *testing.T) {
	var out bytes.Buffer
	Write(&out, metrics.WriteProcessMetrics)
	page := out.String()
	for _, want := range []string{
		"# TYPE go_gc_duration_seconds summary\n",
		"# TYPE go_gc_forced_total counter\n",
		"# TYPE go_cpu_cores gauge\n",
		"# TYPE process_io_read_bytes_total counter\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"go_gc_forced_count", "go_cpu_count", "# HELP go_gc_duration_seconds\n", "# TYPE go_gc_duration_seconds_count"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
}
