package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
)

func TestCheckRedisAndMemcachedExclusive(t *testing.T) {
	file := writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\nsession:\n  memcached:\n    nodes: ['127.0.0.1:11211']\n  redis:\n    addrs: ['127.0.0.1:6379']\n")
	code, _, errOut := run("check", "-config", file)
	if code != 1 || !strings.HasPrefix(errOut, file+":7: session.redis.addrs and session.memcached.nodes exclude each other") {
		t.Fatalf("check with both stores: %d %q", code, errOut)
	}
	good := writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\nsession:\n  redis:\n    addrs: ['127.0.0.1:6379']\n    wait_replicas: 1\n")
	if code, _, errOut := run("check", "-config", good); code != 0 {
		t.Fatalf("check redis config: %d %q", code, errOut)
	}
}

// attrBackend answers with the session's "v" attribute ("-" for a new
// session) and applies ?set= and ?logout=1.
func attrBackend(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("set"); v != "" {
			w.Header().Set("X-Session-Set-V", v)
		}
		if r.URL.Query().Get("logout") != "" {
			w.Header().Set("X-Session-Invalidate", "1")
		}
		v := r.Header.Get("X-Session-Attr-V")
		if r.Header.Get("X-Session-New") == "1" {
			v = "-"
		}
		io.WriteString(w, v)
	}))
	t.Cleanup(s.Close)
	return s
}

// fetchV sends a request with the session cookie (if any) and returns the
// body and the cookie the response set, if any.
func fetchV(t *testing.T, url, cookie string) (body, setCookie string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cookie != "" {
		req.Header.Set("Cookie", "SPSESSIONID="+cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "SPSESSIONID" {
			setCookie = c.Value
		}
	}
	return string(b), setCookie
}

// TestTwoProxiesClientCache runs two proxy processes on one Redis with
// client_cache: hot reads cost the server no command at all, and a change
// or a logout through one proxy is seen by the other's next request within
// 100 ms (server-assisted invalidation, no ttl).
func TestTwoProxiesClientCache(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	app := attrBackend(t)
	cfg := "admin: \"{{admin}}\"\n" + fmt.Sprintf(baseConfig, backendsYAML(app.URL)) + fmt.Sprintf(`session:
  local_cache: {size: 1MiB, ttl: 0s}
  redis:
    addrs: [%q]
    timeout: 500ms
    client_cache: true
`, srv.Addr)
	a, b := startProcess(t, cfg), startProcess(t, cfg)
	A, B := "http://"+a.addr, "http://"+b.addr

	_, id := fetchV(t, A+"/?set=1", "")
	if id == "" {
		t.Fatal("no session cookie from A")
	}
	if v, _ := fetchV(t, B+"/", id); v != "1" {
		t.Fatalf("B read v=%q, want 1", v)
	}
	// A's own write is invalidated too, by a push that may arrive after
	// A's next read has refilled its hot tier: read through both until a
	// round costs no command, so that every pending push has landed.
	deadline := time.Now().Add(5 * time.Second)
	for settled := false; !settled; {
		if time.Now().After(deadline) {
			t.Fatalf("reads through A and B still send commands after 5s:\n%s", srv.MustCLI("INFO", "commandstats"))
		}
		srv.ResetStats()
		fetchV(t, A+"/", id)
		fetchV(t, B+"/", id)
		settled = srv.Commands() == 0
		if !settled {
			time.Sleep(20 * time.Millisecond)
		}
	}
	srv.ResetStats()
	for i := 0; i < 50; i++ {
		for _, p := range []string{A, B} {
			if v, _ := fetchV(t, p+"/", id); v != "1" {
				t.Fatalf("hot read through %s: v=%q", p, v)
			}
		}
	}
	if n := srv.Commands(); n != 0 {
		t.Fatalf("100 hot reads through two proxies sent %d commands to redis, want 0:\n%s", n, srv.MustCLI("INFO", "commandstats"))
	}

	for i := 2; i <= 6; i++ {
		want := fmt.Sprint(i)
		fetchV(t, A+"/?set="+want, id)
		start := time.Now()
		for {
			v, _ := fetchV(t, B+"/", id)
			if v == want {
				break
			}
			if time.Since(start) > 100*time.Millisecond {
				t.Fatalf("change %s through A: B still answers v=%q after 100ms", want, v)
			}
		}
	}
	fetchV(t, A+"/?logout=1", id)
	start := time.Now()
	for {
		v, _ := fetchV(t, B+"/", id)
		if v == "-" {
			break
		}
		if time.Since(start) > 100*time.Millisecond {
			t.Fatalf("logout through A: B still serves the session (v=%q) after 100ms", v)
		}
	}

	// /status lists the server.
	resp, err := http.Get("http://" + b.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Redis []struct {
			Addr string
			Up   bool
		}
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Redis) != 1 || st.Redis[0].Addr != srv.Addr || !st.Redis[0].Up {
		t.Fatalf("/status redis = %+v", st.Redis)
	}
	a.signal(syscall.SIGTERM)
	b.signal(syscall.SIGTERM)
	if ca, cb := a.wait(10*time.Second), b.wait(10*time.Second); ca != 0 || cb != 0 {
		t.Fatalf("exit codes %d %d", ca, cb)
	}
}

// TestRedisAOFRestartThroughProxy kills Redis (SIGKILL) under a running
// proxy; with appendonly and fsync always, every session is there after
// the restart, and the proxy serves them again without a restart of its
// own.
func TestRedisAOFRestartThroughProxy(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	app := attrBackend(t)
	p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(app.URL))+fmt.Sprintf(`session:
  local_cache: {size: 0}
  redis:
    addrs: [%q]
    timeout: 500ms
`, srv.Addr))
	base := "http://" + p.addr
	ids := map[string]string{}
	for i := 0; i < 20; i++ {
		_, id := fetchV(t, base+fmt.Sprintf("/?set=%d", i), "")
		ids[id] = fmt.Sprint(i)
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for id, want := range ids {
		for {
			req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
			req.Header.Set("Cookie", "SPSESSIONID="+id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if string(b) != want {
					t.Fatalf("session %s after the AOF restart: v=%q, want %s", id, b, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy still answers %d after redis restarted", resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
