package admin

import (
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"sessionproxy/proxy"
)

// TestAdminToken checks the admin token rule over raw HTTP: with a token
// set, every admin path but /healthz answers 401 without it.
func TestAdminToken(t *testing.T) {
	p := newUpstream(t, "", nil, newBackend(t, "A"))
	var token atomic.Value // changed below, as a config reload would
	token.Store("s3cret-token")
	admin := httptest.NewServer(RequireToken(func() string { return token.Load().(string) },
		Handler(func() Target { return Target{Upstreams: []*proxy.Proxy{p}} })))
	t.Cleanup(admin.Close)

	// status sends one raw request and returns the status line's code and
	// the WWW-Authenticate header.
	status := func(method, path, auth string) (string, string) {
		t.Helper()
		raw := method + " " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n"
		if auth != "" {
			raw += "Authorization: " + auth + "\r\n"
		}
		resp := rawRequest(t, admin.URL, raw+"\r\n")
		code, _, _ := strings.Cut(resp, "\n")
		var challenge string
		for _, line := range strings.Split(resp, "\r\n") {
			if v, ok := strings.CutPrefix(line, "Www-Authenticate: "); ok && challenge == "" {
				challenge = v
			}
		}
		return code, challenge
	}

	if code, _ := status("GET", "/healthz", ""); code != "200" {
		t.Fatalf("/healthz without a token: %s, want 200", code)
	}
	guarded := []struct {
		method, path string
		want         string // with the right token
	}{
		{"GET", "/status", "200"},
		{"GET", "/metrics", "200"},
		{"GET", "/sessions/x", "404"},
		{"DELETE", "/sessions/x", "404"},
		{"GET", "/debug/pprof/", "200"},
		{"GET", "/no-such-page", "404"},
		{"GET", "/healthz/", "404"}, // only /healthz itself is open
	}
	wrong := []string{
		"",                         // none
		"Bearer wrong",             // another token
		"Bearer s3cret-toke",       // a prefix of it
		"Bearer s3cret-token-and",  // longer
		"Basic s3cret-token",       // another scheme
		"s3cret-token",             // no scheme
		"Bearer",                   // no token
		"Bearer S3CRET-TOKEN",      // tokens are case-sensitive
		"Bearer s3cret-token\x00x", // smuggled bytes
	}
	for _, g := range guarded {
		for _, auth := range wrong {
			code, challenge := status(g.method, g.path, auth)
			if code != "400" && (code != "401" || !strings.HasPrefix(challenge, "Bearer ")) {
				t.Errorf("%s %s with Authorization %q: %s (WWW-Authenticate %q), want 401 and a Bearer challenge",
					g.method, g.path, auth, code, challenge)
			}
		}
		for _, auth := range []string{"Bearer s3cret-token", "bearer s3cret-token", "Bearer  s3cret-token "} {
			if code, _ := status(g.method, g.path, auth); code != g.want {
				t.Errorf("%s %s with Authorization %q: %s, want %s", g.method, g.path, auth, code, g.want)
			}
		}
	}

	// A reload that changes the token takes effect at once.
	token.Store("rotated")
	if code, _ := status("GET", "/status", "Bearer s3cret-token"); code != "401" {
		t.Errorf("old token after a change: %s, want 401", code)
	}
	if code, _ := status("GET", "/status", "Bearer rotated"); code != "200" {
		t.Errorf("new token after a change: %s, want 200", code)
	}
	// Without a token (an admin listener on loopback) everything is open.
	token.Store("")
	if code, _ := status("GET", "/status", ""); code != "200" {
		t.Errorf("no token configured: %s, want 200", code)
	}
}
