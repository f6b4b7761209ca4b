package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sessionproxy/internal/tlstest"
)

func TestRoutesAndUpstreams(t *testing.T) {
	dir := t.TempDir()
	c, err := Load([]byte(`balancer: least_conn
health: {max_fails: 5, fail_timeout: 20s}
upstreams:
  api:
    backends: [{url: "http://127.0.0.1:9101"}]
    health: {max_fails: 1}
routes:
  - match: {path: "/api/"}
    upstream: api
    rewrite_prefix: "/"
    session: false
  - match: {path: "/"}
    static: "` + dir + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	api := c.UpstreamConfig("api")
	if api.Balancer != "least_conn" || api.Health.MaxFails != 1 || api.Health.FailTimeout.Std().String() != "20s" || api.Backends[0].Weight != 1 {
		t.Errorf("api inherits wrongly: %+v", api)
	}
	if c.Routes[0].Sessions() || !c.Routes[1].Sessions() {
		t.Error("session: false not read")
	}
	if names := c.UpstreamNames(); len(names) != 2 || names[0] != "default" {
		t.Errorf("names %v", names)
	}
}

func TestRouteAndCertErrorsHaveLines(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	certA, _ := ca.Leaf(t, dir, "a.example.com")
	_, keyB := ca.Leaf(t, dir, "b.example.com")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	_, err := Load([]byte(`backends: [{url: "http://127.0.0.1:9001"}]
routes:
  - match: {path: "/api/"}
    upstream: nosuch
  - match: {path: "nope"}
    static: "/nonexistent/dir"
  - match: {host: "bad host"}
    upstream: default
    static: "` + dir + `"
error_pages: {200: "/nonexistent.html"}
real_ip_from: ["10.0.0.0/33"]
listen_tls: "127.0.0.1:8443"
tls:
  certificates:
    - {cert: "` + certA + `", key: "` + keyB + `"}
    - {cert: "` + garbage + `", key: "` + garbage + `"}
    - {cert: "/nonexistent.pem", key: "/nonexistent.key"}
  min_version: "1.1"
`))
	es, ok := err.(Errors)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []struct {
		line int
		msg  string
	}{
		{4, `unknown upstream "nosuch"`},
		{5, `must start with /`},
		{6, "routes[1].static"},
		{7, "either upstream or static"},
		{7, `"bad host" is not a host name`},
		{10, "error_pages: 200 is not an error status"},
		{11, "real_ip_from[0]"},
		{15, "tls.certificates[0]: cert"},
		{16, "tls.certificates[1]"},
		{17, "tls.certificates[2]"},
		{18, "tls.min_version"},
	} {
		found := false
		for _, e := range es {
			if e.Line == want.line && strings.Contains(e.Msg, want.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error %q at line %d in:\n%s", want.msg, want.line, es.Format("f"))
		}
	}
}

func TestBackendsMayBeEmptyOnlyWithACatchAllRoute(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load([]byte("routes:\n  - match: {path: \"/\"}\n    static: \"" + dir + "\"\n")); err != nil {
		t.Errorf("catch-all route: %v", err)
	}
	_, err := Load([]byte("routes:\n  - match: {path: \"/static/\"}\n    static: \"" + dir + "\"\n"))
	if err == nil || !strings.Contains(err.Error(), "no backends") {
		t.Errorf("no catch-all: %v", err)
	}
	_, err = Load([]byte("routes:\n  - match: {host: \"a.example.com\", path: \"/\"}\n    static: \"" + dir + "\"\n"))
	if err == nil || !strings.Contains(err.Error(), "no backends") {
		t.Errorf("catch-all only for one host: %v", err)
	}
}
