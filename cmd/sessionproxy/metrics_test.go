package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"sessionproxy/internal/memcachedtest"
)

// TestMetricsPassPromtool scrapes the admin listener's /metrics after
// traffic through every kind of handler (sessions on the default
// upstream, a named upstream behind a route, a static route, an
// upstream whose only backend is dead) and has promtool check it: HELP
// and TYPE for every family, counters ending in _total. It then checks
// that the requests were counted under their upstream and route labels,
// and that the backend's failures are a counter. Under CI promtool
// (Debian's prometheus package) must be there: a missing one fails.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is missing (apt-get install prometheus; make deps)")
		}
		t.Skip("promtool is missing (apt-get install prometheus)")
	}
	mc := memcachedtest.Start(t)
	app := siteBackend(t, "app", nil)
	api, apiHits := namedBackend(t, "api", 0)
	files := t.TempDir()
	if err := os.WriteFile(filepath.Join(files, "a.txt"), []byte("file a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dead := freeAddr(t) // nothing listens there
	p := startProcess(t, fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
backends: [{url: "http://%s"}]
session: {memcached: {nodes: ["n1:%s"], replicas: 1}}
upstreams:
  api: {backends: [{url: "%s"}]}
  flaky: {backends: [{url: "http://%s"}]}
routes:
  - {match: {path: "/api/"}, upstream: api}
  - {match: {path: "/flaky/"}, upstream: flaky, session: false}
  - {match: {path: "/files/"}, static: %q, rewrite_prefix: "/"}
`, app, mc.Addr, api.URL, dead, files))
	base := "http://" + p.addr

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	for i := 1; i <= 3; i++ {
		if body := mustGet(t, c, base+"/"); !strings.Contains(body, " visits="+strconv.Itoa(i)+" ") {
			t.Fatalf("visit %d: %q", i, body)
		}
	}
	if body := mustGet(t, c, base+"/api/x"); body != "api" || apiHits.Load() != 1 {
		t.Fatalf("/api/x reached %q (%d hits on api)", body, apiHits.Load())
	}
	if body := mustGet(t, c, base+"/files/a.txt"); body != "file a\n" {
		t.Fatalf("/files/a.txt = %q", body)
	}
	resp, err := c.Get(base + "/flaky/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("/flaky/x = %d, want 502 from a dead backend", resp.StatusCode)
	}

	page := mustGet(t, http.DefaultClient, "http://"+p.admin+"/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	samples, types := parseMetrics(t, page)
	for name, want := range map[string]float64{
		`sessionproxy_requests_total{upstream="default",code="200"}`:                         3,
		`sessionproxy_requests_total{upstream="api",code="200"}`:                             1,
		`sessionproxy_requests_total{upstream="none",code="200"}`:                            1, // the static file
		`sessionproxy_requests_total{upstream="flaky",code="502"}`:                           1,
		`sessionproxy_request_duration_seconds_count{upstream="default"}`:                    3,
		`sessionproxy_request_duration_seconds_count{upstream="api"}`:                        1,
		`sessionproxy_route_requests_total{route="/api/",upstream="api"}`:                    1,
		`sessionproxy_route_requests_total{route="/files/",upstream="none"}`:                 1,
		`sessionproxy_route_requests_total{route="/flaky/",upstream="flaky"}`:                1,
		`sessionproxy_route_request_duration_seconds_count{route="/api/",upstream="api"}`:    1,
		`sessionproxy_route_request_duration_seconds_count{route="/files/",upstream="none"}`: 1,
		`sessionproxy_backend_up{upstream="api",backend="` + api.URL + `"}`:                  1,
		`sessionproxy_backend_active{upstream="api",backend="` + api.URL + `"}`:              0,
		`sessionproxy_memcached_up{node="n1"}`:                                               1,
		`sessionproxy_handoff_replayed_total{node="n1"}`:                                     0,
	} {
		got, ok := samples[name]
		if !ok {
			t.Errorf("/metrics lacks %s", name)
		} else if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := samples[`sessionproxy_backend_failures_total{upstream="flaky",backend="http://`+dead+`"}`]; got < 1 {
		t.Errorf("the dead backend's failures_total = %v, want at least 1", got)
	}
	for family, want := range map[string]string{
		"sessionproxy_requests_total":                 "counter",
		"sessionproxy_request_duration_seconds":       "histogram",
		"sessionproxy_route_request_duration_seconds": "histogram",
		"sessionproxy_backend_up":                     "gauge",
		"sessionproxy_backend_failures_total":         "counter",
		"sessionproxy_sessions_ended_total":           "counter",
		"sessionproxy_handoff_replayed_total":         "counter",
		"sessionproxy_memcached_copied_total":         "counter",
		"sessionproxy_session_async_written_total":    "counter",
		"sessionproxy_local_cache_entries":            "gauge",
	} {
		if types[family] != want {
			t.Errorf("TYPE of %s = %q, want %s", family, types[family], want)
		}
	}
	for family, typ := range types {
		if strings.HasSuffix(family, "_total") != (typ == "counter") {
			t.Errorf("%s is a %s: counters, and only they, end in _total", family, typ)
		}
	}
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)

// parseMetrics reads a /metrics page: each sample's value by its name
// with labels, and each family's TYPE. A family written twice, or a
// sample before its family's HELP and TYPE, fails the test.
func parseMetrics(t *testing.T, page string) (samples map[string]float64, types map[string]string) {
	t.Helper()
	samples, types = map[string]float64{}, map[string]string{}
	helps := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, text, _ := strings.Cut(f, " ")
			if helps[name] || text == "" {
				t.Errorf("HELP of %s again or empty: %q", name, line)
			}
			helps[name] = true
			continue
		}
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			if _, dup := types[name]; dup || !helps[name] {
				t.Errorf("TYPE of %s again or before its HELP", name)
			}
			types[name] = typ
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a sample: %q", line)
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Errorf("%q: %v", line, err)
		}
		samples[m[1]] = v
	}
	return samples, types
}
