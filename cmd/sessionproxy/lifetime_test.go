package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestSessionLifetimeWired runs the binary with session.max_age,
// cookie_domain and cookie_path over two memcached nodes (the shipped
// defaults otherwise): the cookie carries the domain and path, and a
// session used all the time still ends at max_age, counted in /metrics.
func TestSessionLifetimeWired(t *testing.T) {
	app := sessionBackend(t)
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	p := startProcess(t, fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
backends:
  - url: %q
session:
  max_age: 2s
  cookie_domain: example.com
  cookie_path: /
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, app.URL, n1.Addr, n2.Addr))
	setCookie := func(path, cookie string) (string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", "SPSESSIONID="+cookie)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("Set-Cookie"), string(b)
	}
	set, _ := setCookie("/login?user=ann", "")
	id, _, _ := strings.Cut(strings.TrimPrefix(set, "SPSESSIONID="), ";")
	if !strings.HasSuffix(set, "; Domain=example.com; Path=/; HttpOnly; SameSite=Lax") || id == "" {
		t.Fatalf("login: Set-Cookie %q", set)
	}
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		if _, body := setCookie("/set?v=1", id); !strings.Contains(body, "user=ann") {
			t.Fatalf("in use before max_age: %q", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Until(start.Add(2100 * time.Millisecond)))
	set, body := setCookie("/", id)
	if strings.Contains(body, "user=ann") || strings.Contains(body, "id="+id) {
		t.Fatalf("past max_age: %q", body)
	}
	if set != "SPSESSIONID=; Max-Age=0; Domain=example.com; Path=/; HttpOnly; SameSite=Lax" {
		t.Fatalf("past max_age: Set-Cookie %q, want the cookie expired", set)
	}
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `sessionproxy_sessions_ended_total{reason="max_age"} 1`) {
		t.Fatalf("/metrics does not count the session ended at max_age")
	}
}
