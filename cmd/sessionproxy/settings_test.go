package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"sessionproxy/config"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/proxy"
)

// settingsRoutes are the route paths a request can take to a Proxy: the
// default route, a host route, a path route to another upstream and a
// route without sessions (its own Proxy over the upstream's connections).
const settingsRoutes = `upstreams:
  api: {backends: [{url: "%s"}]}
routes:
  - {match: {host: "api.example"}, upstream: api}
  - {match: {path: "/other/"}, upstream: api}
  - {match: {path: "/plain/"}, upstream: api, session: false}
`

// TestSettingsReachEveryProxy builds a configuration whose every key
// behind proxy.Settings is off its default and checks that each Proxy a
// route can reach (every upstream's, and the session-free one) carries
// the very same Settings. A setting copied field by field and missed on
// one path, as the three copies of old did, fails here. A field of
// Settings that proxySettings leaves at its zero value fails too, so a
// new setting must be set from the config (and given a non-default
// value below).
func TestSettingsReachEveryProxy(t *testing.T) {
	page := filepath.Join(t.TempDir(), "502.html")
	if err := os.WriteFile(page, []byte("<p>down</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`listen: "127.0.0.1:0"
backends: [{url: "http://127.0.0.1:9001"}]
retries: 3
max_tunnels: 7
underscores_in_headers: true
error_pages: {502: %q}
timeouts: {connect: 3s, response: 4s, read_idle: 5s, tunnel_idle: 6s}
session: {max_size: 128KiB, local_cache: {size: 1MiB}}
`, page) + fmt.Sprintf(settingsRoutes, "http://127.0.0.1:9002")
	c, err := config.Load([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	g, err := build(c, newLogger(io.Discard), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.stop(); g.store.Close() })

	want := g.proxy.Settings
	defaults := config.Default()
	for name, got := range map[string]any{
		"Retries":              want.Retries != defaults.Retries,
		"ConnectTimeout":       want.ConnectTimeout != defaults.Timeouts.Connect.Std(),
		"ResponseTimeout":      want.ResponseTimeout != defaults.Timeouts.Response.Std(),
		"ReadIdle":             want.ReadIdle != defaults.Timeouts.ReadIdle.Std(),
		"TunnelIdle":           want.TunnelIdle != defaults.Timeouts.TunnelIdle.Std(),
		"MaxTunnels":           want.MaxTunnels != defaults.MaxTunnels,
		"UnderscoresInHeaders": want.UnderscoresInHeaders,
		"MaxResponseHeader":    want.MaxResponseHeader == 128<<10+16<<10,
	} {
		if got != true {
			t.Errorf("%s: the configured, non-default value did not reach proxy.Settings", name)
		}
	}
	v := reflect.ValueOf(want)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("proxy.Settings.%s is not set from the config (zero in the default route's Proxy)", v.Type().Field(i).Name)
		}
	}

	// Every Proxy a request can reach, named by how it is reached.
	reach := map[string]*proxy.Proxy{"default route": g.router.Default.(*proxy.Proxy)}
	for _, p := range g.router.Upstreams {
		reach["upstream "+p.Upstream] = p
	}
	for i, r := range g.router.Routes {
		p, ok := r.Handler.(*proxy.Proxy)
		if !ok {
			t.Fatalf("route %d: handler %T, want *proxy.Proxy", i, r.Handler)
		}
		reach[fmt.Sprintf("route %d (host %q, path %q)", i, r.Host, r.Path)] = p
	}
	if len(reach) != 6 {
		t.Fatalf("%d proxies reached, want 6 (default, 2 upstreams, 3 routes): %v", len(reach), keys(reach))
	}
	for how, p := range reach {
		if diff := settingsDiff(p.Settings, want); diff != "" {
			t.Errorf("%s: Settings differ from the configuration's: %s", how, diff)
		}
	}
	if plain := g.router.Routes[2].Handler.(*proxy.Proxy); plain.Sessions != nil || plain.ClientsFrom == nil {
		t.Errorf("the session: false route's Proxy has Sessions %v, ClientsFrom %v: want none, and the upstream's clients",
			plain.Sessions, plain.ClientsFrom)
	}
}

// settingsDiff names the fields in which a and b differ; func fields are
// compared by identity, which reflect.DeepEqual does not do.
func settingsDiff(a, b proxy.Settings) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var diff []string
	for i := range va.NumField() {
		fa, fb := va.Field(i), vb.Field(i)
		same := false
		if fa.Kind() == reflect.Func {
			same = fa.IsNil() == fb.IsNil() && fa.Pointer() == fb.Pointer()
		} else {
			same = reflect.DeepEqual(fa.Interface(), fb.Interface())
		}
		if !same {
			diff = append(diff, va.Type().Field(i).Name)
		}
	}
	return strings.Join(diff, ", ")
}

func keys(m map[string]*proxy.Proxy) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestSettingsInEffectOnEveryRoute runs the binary with two settings off
// their defaults, underscores_in_headers on and a short response timeout
// (the rest is the shipped defaults), and checks both act on each way a
// request can go: the default route, a host route, a path route and a
// route without sessions. A Proxy that missed a setting would drop the
// header or wait for the 30s default.
func TestSettingsInEffectOnEveryRoute(t *testing.T) {
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/slow") {
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			fmt.Fprintf(w, "%s key=%s", name, r.Header.Get("X_Api_Key"))
		}))
		t.Cleanup(s.Close)
		return s
	}
	app, api := backend("app"), backend("api")
	p := startProcess(t, fmt.Sprintf(`listen: "{{listen}}"
backends: [{url: "%s"}]
underscores_in_headers: true
timeouts: {response: 300ms}
`, app.URL)+fmt.Sprintf(settingsRoutes, api.URL))

	for _, tt := range []struct{ route, host, path, backend string }{
		{"default", "www.example", "/", "app"},
		{"host", "api.example", "/", "api"},
		{"path", "www.example", "/other/", "api"},
		{"no sessions", "www.example", "/plain/", "api"},
	} {
		resp, body := rawtcp.Exchange(t, p.addr, "GET "+tt.path+" HTTP/1.1\r\nHost: "+tt.host+"\r\nX_Api_Key: k\r\n\r\n")
		if want := tt.backend + " key=k"; resp.StatusCode != 200 || body != want {
			t.Errorf("%s route: %d %q, want 200 %q (underscores_in_headers not in effect?)", tt.route, resp.StatusCode, body, want)
		}
		start := time.Now()
		resp, _ = rawtcp.Exchange(t, p.addr, "GET "+tt.path+"slow HTTP/1.1\r\nHost: "+tt.host+"\r\n\r\n")
		if took := time.Since(start); resp.StatusCode != http.StatusGatewayTimeout || took > 3*time.Second {
			t.Errorf("%s route, a backend silent for 5s: %d after %v, want 504 after the 300ms response timeout",
				tt.route, resp.StatusCode, took.Round(time.Millisecond))
		}
	}
}

// TestResponseHeaderRoomFollowsMaxSize: the proxy accepts a backend's
// response header of max_size plus 16 KiB, so a
// larger max_size also raises it.
func TestResponseHeaderRoomFollowsMaxSize(t *testing.T) {
	for _, maxSize := range []config.Size{64 << 10, 256 << 10} {
		c := config.Default()
		c.Backends = []config.Backend{{URL: "http://127.0.0.1:9001", Weight: 1}}
		c.Session.MaxSize = maxSize
		c.Session.LocalCache.Size = 1 << 20
		g, err := build(c, newLogger(io.Discard), nil)
		if err != nil {
			t.Fatal(err)
		}
		g.stop()
		g.store.Close()
		if got, want := g.proxy.MaxResponseHeader, int(maxSize)+16<<10; got != want {
			t.Errorf("max_size %d: MaxResponseHeader = %d, want %d", maxSize, got, want)
		}
	}
}
