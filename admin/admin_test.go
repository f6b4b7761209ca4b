package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/storetest"
	"sessionproxy/internal/testutil"
	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
)

func TestAdminEndpoints(t *testing.T) {
	a := newBackend(t, "A")
	p := newUpstream(t, "", nil, a, "http://"+testutil.FreeAddr(t))
	base := serve(t, p)
	get(t, base+"/")
	get(t, base+"/")
	admin := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}})

	if r := get(t, admin+"/healthz"); r.status != 200 || r.body != "ok\n" {
		t.Fatalf("/healthz = %d %q", r.status, r.body)
	}
	r := get(t, admin+"/status")
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || len(st.Backends) != 2 {
		t.Fatalf("/status = %q (%v)", r.body, err)
	}
	if !st.Backends[0].Up || st.Backends[0].URL != a {
		t.Errorf("backend A status = %+v", st.Backends[0])
	}
	if st.Backends[1].Fails == 0 {
		t.Errorf("dead backend status = %+v, want fails > 0", st.Backends[1])
	}
	m := get(t, admin+"/metrics").body
	for _, want := range []string{
		`sessionproxy_requests_total{upstream="default",code="200"} 2`,
		`sessionproxy_backend_up{upstream="default",backend="` + a + `"} 1`,
		`sessionproxy_request_duration_seconds_bucket{upstream="default",le="`,
		`sessionproxy_request_duration_seconds_count{upstream="default"} 2`,
		"# TYPE sessionproxy_requests_total counter\n",
		"# HELP sessionproxy_backend_up ",
		`sessionproxy_tunnels_active 0`,
		`process_resident_memory_bytes `, // the process's own
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestStatusShape pins the /status document's keys and the answers of
// /sessions without sessions: scripts and dashboards read them, and the
// store's nodes are filled by the store itself, out of this package's
// sight.
func TestStatusShape(t *testing.T) {
	p := newUpstream(t, "", nil, newBackend(t, "A"))
	embedded, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(embedded.Close)
	for _, tc := range []struct {
		name  string
		store *sessionstore.Store
		want  string
	}{
		{"sessions off", nil, `{"backends":[{"upstream":"default","url":"` + p.Pool.Backends[0].URL +
			`","up":true,"active":0,"fails":0,"backup":false,"served":0}],"memcached":[]}`},
		{"hot tier only", embedded, `"memcached":[]}`},
	} {
		admin := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}, Store: tc.store})
		r := get(t, admin+"/status")
		var compact bytes.Buffer
		json.Compact(&compact, []byte(r.body))
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" || !strings.HasSuffix(compact.String(), tc.want) {
			t.Errorf("%s: /status = %d %s %s, want …%s", tc.name, r.status, r.header.Get("Content-Type"), compact.String(), tc.want)
		}
		if !strings.HasPrefix(r.body, "{\n  \"backends\": [") {
			t.Errorf("%s: /status is not indented as before: %q", tc.name, r.body)
		}
	}
	admin := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}})
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		if r := do(t, method, admin+"/sessions/"+string(sessionstore.AppendNewID(nil))); r.status != 404 || r.body != "sessions are not enabled\n" {
			t.Errorf("%s /sessions/<id> without sessions = %d %q", method, r.status, r.body)
		}
	}
}

// TestStatusAndMetricsNameUpstreams: each upstream's backends are listed
// under its name, and a session-free route over an upstream's clients
// adds no second series.
func TestStatusAndMetricsNameUpstreams(t *testing.T) {
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	appURL, apiURL := newBackend(t, "app"), newBackend(t, "api")
	app, api := newUpstream(t, "", store, appURL), newUpstream(t, "api", store, apiURL)
	api.Metrics = proxy.NewMetrics()
	app.Metrics, app.Sessions = api.Metrics, api.Sessions // one process: shared counters and sessions
	apiPlain := &proxy.Proxy{Pool: api.Pool, ClientsFrom: api, Upstream: "api", Settings: proxy.Settings{Metrics: api.Metrics, AccessLog: testAccessLog}}
	rt := &proxy.Router{
		Default:   app,
		Upstreams: []*proxy.Proxy{app, api},
		Routes:    []proxy.Route{{Host: "api.example.com", Path: "/v1/", Handler: apiPlain}},
		Recorder:  &proxy.Recorder{Metrics: api.Metrics, AccessLog: testAccessLog},
	}
	base := serve(t, rt)
	if r := rawRequest(t, base, "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(r, "200\n") {
		t.Fatalf("request to the api route: %s", r)
	}
	admin := startAdmin(t, Target{Upstreams: rt.Upstreams, Store: store})

	var st Status
	json.Unmarshal([]byte(get(t, admin+"/status").body), &st)
	if len(st.Backends) != 2 || st.Backends[0].Upstream != "default" || st.Backends[1].Upstream != "api" ||
		st.Backends[1].URL != api.Pool.Backends[0].URL || st.Backends[1].Served != 1 {
		t.Fatalf("status: %+v", st.Backends)
	}
	m := get(t, admin+"/metrics").body
	for _, want := range []string{
		`sessionproxy_backend_up{upstream="default",backend="` + app.Pool.Backends[0].URL + `"} 1`,
		`sessionproxy_backend_up{upstream="api",backend="` + api.Pool.Backends[0].URL + `"} 1`,
		`sessionproxy_requests_total{upstream="api",code="200"} 1`,
		"\nsessionproxy_local_cache_entries ", // the store's gauges, once
	} {
		if n := strings.Count(m, want); n != 1 {
			t.Errorf("/metrics has %q %d times, want once", want, n)
		}
	}
	if n := strings.Count(m, "sessionproxy_backend_up{"); n != 2 {
		t.Errorf("%d backend_up series, want 2 (a session-free route adds none)", n)
	}
}

// TestSessionsAndStatus runs the admin pages against each kind of shared
// store, on real servers: /sessions/<id> reads and deletes a session the
// proxy stored, /status lists the store's own nodes, and /metrics the
// store's own gauges.
func TestSessionsAndStatus(t *testing.T) {
	storetest.RunEach(t, storetest.Kinds, []storetest.Case{{Name: "sessions and status", Test: testSessionsAndStatus}})
}

func testSessionsAndStatus(t *testing.T, d *storetest.Deployment) {
	so := sessionstore.Options{LocalSize: 1 << 20}
	if d.Kind.Redis {
		so.Redis = sessionstore.RedisOptions{Addrs: d.Addrs(), KeyPrefix: d.Prefix(), ClientCache: true,
			Timeout: 2 * time.Second, ProbeInterval: 50 * time.Millisecond} // a loaded machine under -race
	} else {
		so.Memcached = sessionstore.MemcachedOptions{KeyPrefix: d.Prefix(), Timeout: 300 * time.Millisecond, ProbeInterval: 20 * time.Millisecond}
		for i, a := range d.Addrs() {
			so.Memcached.Nodes = append(so.Memcached.Nodes, sessionstore.Node{ID: fmt.Sprintf("n%d", i+1), Addr: a})
		}
	}
	store, err := sessionstore.New(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	store.Reconciled()
	p := newUpstream(t, "", store, newBackend(t, "A"))
	base := serve(t, p)
	admin := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}, Store: store})

	r := get(t, base+"/?set=user:bob")
	cookie, _, _ := strings.Cut(r.header.Get("Set-Cookie"), ";")
	id, ok := strings.CutPrefix(cookie, "SPSESSIONID=")
	if r.status != 200 || !ok {
		t.Fatalf("login: %d, Set-Cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
	if r := get(t, base+"/", "Cookie", cookie); r.body != "A" {
		t.Fatalf("the session's second request: %q", r.body)
	}
	r = get(t, admin+"/sessions/"+id)
	var doc SessionJSON
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil || doc.ID != id || doc.Attributes["user"] != "bob" || doc.Created == 0 {
		t.Fatalf("GET /sessions/id = %d %q", r.status, r.body)
	}
	// Section 16: created, last access and ttl; the principal is empty
	// unless Target.Principal names an attribute.
	if doc.LastAccess < doc.Created-1000 || doc.LastAccess > time.Now().UnixMilli() || doc.TTL != 1800 || doc.Principal != "" ||
		!strings.Contains(r.body, `"principal": ""`) || !strings.Contains(r.body, `"last_access": `) {
		t.Fatalf("GET /sessions/id: last access, ttl or principal wrong: %s", r.body)
	}
	withPrincipal := startAdmin(t, Target{Upstreams: []*proxy.Proxy{p}, Store: store, Principal: "user"})
	if err := json.Unmarshal([]byte(get(t, withPrincipal+"/sessions/"+id).body), &doc); err != nil || doc.Principal != "bob" {
		t.Fatalf("GET /sessions/id with principal user: %+v %v", doc, err)
	}
	endedBefore := sessionstore.Ended(sessionstore.EndAdmin)
	for _, unknown := range []string{"nope", string(sessionstore.AppendNewID(nil))} {
		if r := get(t, admin+"/sessions/"+unknown); r.status != 404 {
			t.Fatalf("GET /sessions/%s = %d", unknown, r.status)
		}
	}
	if r := do(t, http.MethodDelete, admin+"/sessions/"+id); r.status != 204 {
		t.Fatalf("DELETE = %d %q", r.status, r.body)
	}
	if sessionstore.Ended(sessionstore.EndAdmin) == endedBefore {
		t.Fatal("admin DELETE not counted in sessions_ended_total{reason=admin}")
	}
	if m := get(t, admin+"/metrics").body; !strings.Contains(m, `sessionproxy_sessions_ended_total{reason="admin"} `) {
		t.Fatal("/metrics has no sessionproxy_sessions_ended_total{reason=\"admin\"}")
	}
	if r := get(t, base+"/", "Cookie", cookie); !strings.HasPrefix(r.body, "new ") {
		t.Fatalf("session alive after admin DELETE: %q", r.body)
	}

	want := []string{`sessionproxy_session_lookups_total{result="local"} `, `sessionproxy_session_lookups_total{result="miss"} `}
	var st Status
	if d.Kind.Redis {
		// Servers are probed in the background, a Cluster's once the
		// client has read the slot map from the seeds. /status shows what
		// the store reports: every server, each up or not as the store
		// has it, and every one of them up here (a Cluster's replicas
		// included, pinged on connections of their own).
		shown := func() bool {
			st = Status{}
			json.Unmarshal([]byte(get(t, admin+"/status").body), &st)
			nodes, up := store.Nodes(), 0
			if len(st.Redis) != len(d.Addrs()) || len(nodes) != len(st.Redis) {
				return false
			}
			for i, n := range nodes {
				if st.Redis[i] != (sessionstore.RedisStatus{Addr: n.Addr, Up: n.Up}) {
					return false
				}
				if n.Up {
					up++
				}
			}
			for _, addr := range d.Addrs() {
				if !slices.ContainsFunc(st.Redis, func(s sessionstore.RedisStatus) bool { return s.Addr == addr }) {
					return false
				}
			}
			return up == len(nodes)
		}
		for deadline := time.Now().Add(15 * time.Second); !shown(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("/status redis = %+v, want every one of %v as the store reports them: %+v", st.Redis, d.Addrs(), store.Nodes())
			}
		}
		if len(st.Memcached) != 0 {
			t.Fatalf("/status lists memcached nodes under redis: %+v", st.Memcached)
		}
		for _, s := range st.Redis {
			want = append(want, fmt.Sprintf(`sessionproxy_redis_up{server=%q} %d`, s.Addr, map[bool]int{true: 1}[s.Up]))
		}
	} else {
		json.Unmarshal([]byte(get(t, admin+"/status").body), &st)
		if len(st.Memcached) != 2 || len(st.Redis) != 0 {
			t.Fatalf("/status = %+v", st)
		}
		for i, n := range st.Memcached {
			if n.ID != fmt.Sprintf("n%d", i+1) || n.Addr != d.Addrs()[i] || !n.Up || n.State != "up" {
				t.Fatalf("/status memcached = %+v", st.Memcached)
			}
			want = append(want, fmt.Sprintf(`sessionproxy_memcached_up{node=%q} 1`, n.ID),
				fmt.Sprintf(`sessionproxy_handoff_pending{node=%q} 0`, n.ID))
		}
	}
	m := get(t, admin+"/metrics").body
	for _, w := range want {
		if !strings.Contains(m, w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}
