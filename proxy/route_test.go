package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"sessionproxy/sessionstore"
)

var routeMatchTests = []struct {
	route      Route
	host, path string
	want       bool
}{
	{Route{}, "any", "/", true},
	{Route{Path: "/api/"}, "x", "/api/v1", true},
	{Route{Path: "/api/"}, "x", "/api", false},
	{Route{Path: "/api/"}, "x", "/API/v1", false},     // paths are compared byte for byte
	{Route{Path: "/admin/"}, "x", "/admin%2Fx", true}, // a normalised %2F is the "/" backends read
	{Route{Path: "/admin/"}, "x", "/admin%2fx", true},
	{Route{Path: "/admin/x"}, "x", "/admin%2Fx", true},
	{Route{Path: "/admin/"}, "x", "/admin%25x", false},
	{Route{Path: "/a%b/"}, "x", "/a%25b/c", true},
	{Route{Path: "/admin/"}, "x", "/admin%2", false},
	{Route{Host: "api.example.com"}, "api.example.com", "/", true},
	{Route{Host: "api.example.com"}, "API.Example.COM:8080", "/", true},
	{Route{Host: "api.example.com"}, "api.example.com.evil", "/", false},
	{Route{Host: "api.example.com"}, "api.example.com.", "/", true},
	{Route{Host: "api.example.com"}, "API.example.com.:8080", "/", true},
	{Route{Host: "api.example.com"}, "api.example.com..", "/", false},
	{Route{Host: "*.example.com"}, "a.example.com.", "/", true},
	{Route{Host: "api.example.com"}, "xapi.example.com", "/", false},
	{Route{Host: "*.example.com"}, "a.example.com", "/", true},
	{Route{Host: "*.example.com"}, "a.b.example.com:443", "/", true},
	{Route{Host: "*.example.com"}, "example.com", "/", false},
	{Route{Host: "*.example.com"}, ".example.com", "/", false},
	{Route{Host: "*.example.com"}, "badexample.com", "/", false},
	{Route{Host: "::1"}, "[::1]:80", "/", false},
	{Route{Host: "[::1]"}, "[::1]:80", "/", true},
	{Route{Host: "[::1]"}, "[::1]", "/", true},
	{Route{Host: "a.example.com", Path: "/v1/"}, "a.example.com", "/v1/x", true},
	{Route{Host: "a.example.com", Path: "/v1/"}, "a.example.com", "/v2/x", false},
	{Route{Host: "a.example.com", Path: "/v1/"}, "b.example.com", "/v1/x", false},
}

func TestRouteMatches(t *testing.T) {
	for _, tc := range routeMatchTests {
		if got := tc.route.matches([]byte(tc.host), []byte(tc.path)); got != tc.want {
			t.Errorf("route{host %q path %q} on %s%s = %v, want %v", tc.route.Host, tc.route.Path, tc.host, tc.path, got, tc.want)
		}
	}
}

// startHandler serves h on a free loopback port and returns its base URL.
func startHandler(t *testing.T, h Handler, o ServerOptions) string {
	t.Helper()
	withDefaultLog(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h.ServeHTTP, o)
	go srv.Serve(NewLingerListener(ln))
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// routedSite is a Router over two upstreams with real backends: "default"
// (app) with sessions, "api" without on one route and with on another.
type routedSite struct {
	url      string
	app, api *testBackend
	router   *Router
}

func newRoutedSite(t *testing.T) *routedSite {
	t.Helper()
	s := &routedSite{app: newTestBackend(t, "app"), api: newTestBackend(t, "api")}
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	sessions := &Sessions{Store: store}
	metrics := NewMetrics()
	app := &Proxy{Pool: newPool(t, "round_robin", nil, s.app.url()), Sessions: sessions, Settings: Settings{Metrics: metrics}}
	api := &Proxy{Pool: newPool(t, "round_robin", nil, s.api.url()), Sessions: sessions, Upstream: "api", Settings: Settings{Metrics: metrics}}
	apiPlain := &Proxy{Pool: api.Pool, ClientsFrom: api, Upstream: "api", Settings: Settings{Metrics: metrics}}
	s.router = &Router{
		Default:   app,
		Upstreams: []*Proxy{app, api},
		Routes: []Route{
			{Host: "api.example.com", Path: "/v1/", Handler: apiPlain},
			{Path: "/api/", Rewrite: true, RewritePrefix: "/", Handler: api},
			{Path: "/legacy/", Rewrite: true, RewritePrefix: "/new/", Handler: api},
		},
	}
	s.url = startHandler(t, s.router, ServerOptions{})
	return s
}

func TestRouterSendsEachRouteToItsUpstream(t *testing.T) {
	s := newRoutedSite(t)
	for _, tc := range []struct {
		host, path   string
		backend, uri string
		session      bool
	}{
		{"www.example.com", "/page?x=1", "app", "/page?x=1", true},
		{"api.example.com", "/v1/users?id=7", "api", "/v1/users?id=7", false},
		{"API.example.com:8080", "/v1/users", "api", "/v1/users", false},
		{"www.example.com", "/v1/users", "app", "/v1/users", true}, // host does not match
		{"www.example.com", "/api/users?q=a", "api", "/users?q=a", true},
		{"www.example.com", "/api/", "api", "/", true},
		{"www.example.com", "/legacy/a%20b", "api", "/new/a%20b", true},
		{"www.example.com", "/x/../api/y", "api", "/y", true}, // matched after normalisation
		{"www.example.com", "/api", "app", "/api", true},      // prefix /api/ only
	} {
		r := get(t, s.url+tc.path, "Host", tc.host)
		if r.status != 200 || r.header.Get("X-Backend") != tc.backend {
			t.Errorf("%s%s: status %d from %q, want 200 from %s", tc.host, tc.path, r.status, r.header.Get("X-Backend"), tc.backend)
			continue
		}
		b := s.app
		if tc.backend == "api" {
			b = s.api
		}
		b.mu.Lock()
		uri, hdr := b.lastReq.RequestURI, b.last
		b.mu.Unlock()
		if uri != tc.uri {
			t.Errorf("%s%s: backend got %q, want %q", tc.host, tc.path, uri, tc.uri)
		}
		if got := hdr.Get("X-Session-Id") != ""; got != tc.session {
			t.Errorf("%s%s: session headers sent = %v, want %v", tc.host, tc.path, got, tc.session)
		}
	}
}

func TestSessionFreeRouteStripsBackendSessionHeaders(t *testing.T) {
	s := newRoutedSite(t)
	s.api.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-Role", "admin")
	})
	r := get(t, s.url+"/v1/x", "Host", "api.example.com")
	if r.status != 200 || r.header.Get("Set-Cookie") != "" || r.header.Get("X-Session-Set-Role") != "" {
		t.Fatalf("session: false route: status %d, cookie %q, leaked %q", r.status, r.header.Get("Set-Cookie"), r.header.Get("X-Session-Set-Role"))
	}
	// The same upstream with sessions on stores it and sets the cookie.
	r = get(t, s.url+"/api/x")
	if r.status != 200 || !strings.Contains(r.header.Get("Set-Cookie"), "SPSESSIONID=") {
		t.Fatalf("session route: status %d, cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	for _, tc := range []struct{ port, host, uri, want string }{
		{"8443", "www.example.com:8080", "/a/b?c=d", "https://www.example.com:8443/a/b?c=d"},
		{"443", "www.example.com", "/", "https://www.example.com/"},
		{"443", "[::1]:8080", "/x%20y", "https://[::1]/x%20y"},
	} {
		rt := &Router{Default: &Proxy{Pool: newPool(t, "round_robin", nil)}, RedirectHTTPSPort: tc.port}
		url := startHandler(t, rt, ServerOptions{})
		raw := rawRequest(t, url, "GET "+tc.uri+" HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
		if !strings.HasPrefix(raw, "308\n") || !strings.Contains(raw, "Location: "+tc.want+"\r\n") {
			t.Errorf("%s%s: got\n%s\nwant 308 to %s", tc.host, tc.uri, raw, tc.want)
		}
	}
}
