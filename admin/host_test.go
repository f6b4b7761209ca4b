package admin

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"

	"sessionproxy/proxy"
)

// TestAdminForeignHost sends raw requests with each kind of Host to an
// admin listener on 127.0.0.1: only its own address and the loopback
// names with its port pass; any other name (a DNS rebinding page's) gets
// 403, whatever the credentials and whatever the path, /healthz included.
func TestAdminForeignHost(t *testing.T) {
	p := newUpstream(t, "", nil, newBackend(t, "A"))
	h := Handler(func() Target { return Target{Upstreams: []*proxy.Proxy{p}} })
	srv := httptest.NewServer(RequireLocalHost("127.0.0.1:0", RequireToken(func() string { return "tok" }, h)))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	status := func(host, path, auth string) string {
		t.Helper()
		raw := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
		if auth != "" {
			raw += "Authorization: " + auth + "\r\n"
		}
		code, _, _ := strings.Cut(rawRequest(t, srv.URL, raw+"\r\n"), "\n")
		return code
	}
	for _, host := range []string{addr, "localhost:" + port, "LOCALHOST:" + port, "127.0.0.1:" + port, "[::1]:" + port} {
		if code := status(host, "/status", "Bearer tok"); code != "200" {
			t.Errorf("Host %q: %s, want 200", host, code)
		}
	}
	for _, host := range []string{
		"evil.example:" + port, // DNS rebinding: the attacker's name, resolved to 127.0.0.1
		"evil.example",
		"localhost",          // the wrong port (none: 80)
		"localhost:1",        // the wrong port
		"127.0.0.2:" + port,  // another loopback address is not this listener's
		"localhost.:" + port, // not the same name to a browser's origin
	} {
		for _, path := range []string{"/status", "/healthz", "/sessions/x", "/", "/dashboard.json"} {
			if code := status(host, path, "Bearer tok"); code != "403" {
				t.Errorf("Host %q %s: %s, want 403", host, path, code)
			}
		}
	}
	// Hosts net/http refuses itself as malformed never reach a page.
	for _, host := range []string{"127.0.0.1:" + port + "@evil.example", ""} {
		if code := status(host, "/status", "Bearer tok"); code != "403" && code != "400" {
			t.Errorf("Host %q: %s, want 403 or 400", host, code)
		}
	}
}

// TestAdminBasicAuth: a browser may send the token as the password of
// HTTP Basic authentication, with any user name; a 401 challenges for
// Basic as well as Bearer so that a browser asks.
func TestAdminBasicAuth(t *testing.T) {
	p := newUpstream(t, "", nil, newBackend(t, "A"))
	h := Handler(func() Target { return Target{Upstreams: []*proxy.Proxy{p}} })
	srv := httptest.NewServer(RequireLocalHost("", RequireToken(func() string { return "s3cret" }, h)))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	send := func(auth string) string {
		t.Helper()
		raw := "GET /status HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
		if auth != "" {
			raw += "Authorization: " + auth + "\r\n"
		}
		return rawRequest(t, srv.URL, raw+"\r\n")
	}
	basic := func(userpass string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(userpass)) }
	for _, auth := range []string{basic("admin:s3cret"), basic(":s3cret"), basic("anyone:s3cret"), "basic " + base64.StdEncoding.EncodeToString([]byte("x:s3cret"))} {
		if code, _, _ := strings.Cut(send(auth), "\n"); code != "200" {
			t.Errorf("Authorization %q: %s, want 200", auth, code)
		}
	}
	for _, auth := range []string{basic("s3cret:"), basic("admin:wrong"), basic("admin:s3cre"), basic("admin:s3cret\x00"), basic("s3cret"), "Basic s3cret"} {
		if code, _, _ := strings.Cut(send(auth), "\n"); code != "401" {
			t.Errorf("Authorization %q: %s, want 401", auth, code)
		}
	}
	resp := send("")
	if !strings.Contains(resp, `Www-Authenticate: Basic realm="sessionproxy admin"`) || !strings.Contains(resp, `Www-Authenticate: Bearer realm=`) {
		t.Errorf("401 without credentials does not challenge for Basic and Bearer:\n%s", resp)
	}
}
