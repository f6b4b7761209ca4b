package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
)

// TestDashboardPage: GET / is one HTML page that names no outside asset
// (no src, href, url() or @import; a CSP that allows only its own inline
// style and script, by a nonce new on every request), and only / is the
// page: other paths stay 404.
func TestDashboardPage(t *testing.T) {
	p := newUpstream(t, "", nil, newBackend(t, "A"))
	admin := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}})
	r := get(t, admin+"/")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", r.status, r.header.Get("Content-Type"))
	}
	for _, ref := range []string{"src=", "href=", "url(", "@import", "http://", "https://"} {
		if strings.Contains(r.body, ref) {
			t.Errorf("the page has %q: it must load nothing from outside", ref)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	nonce := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(csp)
	if !strings.HasPrefix(csp, "default-src 'none';") || nonce == nil || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}
	if strings.Count(r.body, `nonce="`+nonce[1]+`"`) != 2 {
		t.Errorf("the style and the script do not both carry the nonce %q", nonce[1])
	}
	if !strings.Contains(r.body, "const refreshMs =  2000 ;") {
		t.Errorf("the page does not refresh every 2 s")
	}
	if again := get(t, admin+"/").header.Get("Content-Security-Policy"); again == csp {
		t.Errorf("the nonce did not change between two requests")
	}
	for _, path := range []string{"/index.html", "/nope", "/dashboard"} {
		if r := get(t, admin+path); r.status != 404 {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
}

// TestDashboardJSON: a sample counts every request and the 5xx among
// them from the /metrics page, lists the backends of each upstream with
// what they served, and the hot tier's entries and lookups.
func TestDashboardJSON(t *testing.T) {
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	app, api := newUpstream(t, "", store, newBackend(t, "app")), newUpstream(t, "api", store, failing.URL)
	api.Metrics = proxy.NewMetrics()
	app.Metrics, app.Sessions = api.Metrics, api.Sessions
	rt := &proxy.Router{
		Default:   app,
		Upstreams: []*proxy.Proxy{app, api},
		Routes:    []proxy.Route{{Path: "/api/", Handler: api}},
		Recorder:  &proxy.Recorder{Metrics: api.Metrics, AccessLog: testAccessLog},
	}
	base := serve(t, rt)
	r := get(t, base+"/?set=user:ann")
	cookie, _, _ := strings.Cut(r.header.Get("Set-Cookie"), ";")
	get(t, base+"/", "Cookie", cookie)
	get(t, base+"/", "Cookie", cookie)
	if r := get(t, base+"/api/x"); r.status != 503 {
		t.Fatalf("the failing upstream answered %d", r.status)
	}
	admin := startAdmin(t, Target{Upstreams: rt.Upstreams, Store: store})

	var d Dashboard
	body := get(t, admin+"/dashboard.json").body
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Requests != 4 || d.Errors != 1 {
		t.Errorf("requests %d, errors %d, want 4 and 1:\n%s", d.Requests, d.Errors, body)
	}
	if !d.Sessions || d.HotEntries != 1 || d.Lookups["local"] != 2 || d.HotHitRatio != 1 || d.Time == 0 {
		t.Errorf("sessions %v, hot entries %d, lookups %v, hit ratio %v", d.Sessions, d.HotEntries, d.Lookups, d.HotHitRatio)
	}
	if len(d.Backends) != 2 || d.Backends[0].Upstream != "default" || d.Backends[0].Served != 3 ||
		d.Backends[1].Upstream != "api" || d.Backends[1].Served != 1 || !d.Backends[0].Up {
		t.Errorf("backends %+v", d.Backends)
	}
	if !strings.Contains(body, `"memcached": []`) {
		t.Errorf("the sample lacks the store's nodes (none here):\n%s", body)
	}

	// Sessions off: no store, the sample says so.
	off := startAdmin(t, Target{Upstreams: []*proxy.Proxy{newUpstream(t, "", nil, newBackend(t, "B"))}})
	if err := json.Unmarshal([]byte(get(t, off+"/dashboard.json").body), &d); err != nil || d.Sessions || d.HotEntries != 0 {
		t.Errorf("without a store: %+v %v", d, err)
	}
}

// TestParseSample reads the lines of Prometheus' text format the
// dashboard sums, labels escaped as the format escapes them.
func TestParseSample(t *testing.T) {
	for _, c := range []struct {
		line, name, code, upstream string
		value                      uint64
		ok                         bool
	}{
		{`sessionproxy_requests_total{code="503"} 7`, "sessionproxy_requests_total", "503", "", 7, true},
		{`sessionproxy_requests_total{upstream="a,\"b\"",route="/x",code="200"} 12`, "sessionproxy_requests_total", "200", `a,"b"`, 12, true},
		{`sessionproxy_requests_total{code="200",upstream="a\\"} 3`, "sessionproxy_requests_total", "200", `a\`, 3, true},
		{`go_goroutines 12`, "go_goroutines", "", "", 12, true},
		{`sessionproxy_x 1.5e+06`, "sessionproxy_x", "", "", 1500000, true},
		{`# TYPE sessionproxy_requests_total counter`, "", "", "", 0, false},
		{``, "", "", "", 0, false},
		{`nonsense`, "", "", "", 0, false},
		{`x NaN`, "", "", "", 0, false},
		{`x -1`, "", "", "", 0, false},
	} {
		name, labels, v, ok := parseSample(c.line)
		if ok != c.ok || name != c.name || v != c.value || label(labels, "code") != c.code || label(labels, "upstream") != c.upstream {
			t.Errorf("%q: %q %q(code %q, upstream %q) %d %v", c.line, name, labels, label(labels, "code"), label(labels, "upstream"), v, ok)
		}
	}
}
