// Package examples_test runs each example backend, two instances of it,
// behind the proxy with two real memcached nodes, as a user would.
package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
	_ "sessionproxy/sessionstore/memcached" // New builds the memcached store of these tests
)

func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

// start runs an example backend and waits for it to listen. A missing
// interpreter fails the test: `make test` installs them.
func start(t *testing.T, name string, argv ...string) string {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Fatalf("%s is needed to run the %s example: %v", argv[0], name, err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(argv[0], append(argv[1:], "--listen", addr, "--name", name)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s example did not start on %s", name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startProxy(t *testing.T, backends ...string) string {
	t.Helper()
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	store, err := sessionstore.New(sessionstore.Options{Memcached: sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr, Failover: true}}, Timeout: 300 * time.Millisecond}, LocalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	var bs []*balancer.Backend
	for _, u := range backends {
		b, err := proxy.NewBackend(u, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	pool, _ := balancer.NewPool("round_robin", bs, nil)
	p := &proxy.Proxy{Pool: pool, Sessions: &proxy.Sessions{Store: store}, Settings: proxy.Settings{Retries: 1}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(p.ServeHTTP, proxy.ServerOptions{})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

type reply struct {
	Backend string            `json:"backend"`
	Session string            `json:"session"`
	User    string            `json:"user"`
	Counter int               `json:"counter"`
	Attrs   map[string]string `json:"attrs"`
}

func TestExamplesBehindProxy(t *testing.T) {
	goBin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", goBin, "./go").CombinedOutput(); err != nil {
		t.Fatalf("building the Go example: %v\n%s", err, out)
	}
	examples := []struct {
		lang string
		argv []string
	}{
		{"go", []string{goBin}},
		{"python", []string{"python3", "python/app.py"}},
		{"node", []string{"node", "node/app.js"}},
	}
	for _, ex := range examples {
		t.Run(ex.lang, func(t *testing.T) {
			one := start(t, ex.lang+"-1", ex.argv...)
			two := start(t, ex.lang+"-2", ex.argv...)
			base := startProxy(t, one, two)
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
			get := func(path string) reply {
				t.Helper()
				resp, err := c.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var r reply
				if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&r) != nil {
					t.Fatalf("GET %s: %d", path, resp.StatusCode)
				}
				return r
			}
			seen := map[string]bool{}
			var session string
			for i := 1; i <= 4; i++ {
				r := get("/")
				if r.Counter != i {
					t.Fatalf("visit %d: counter %d (%+v)", i, r.Counter, r)
				}
				if i > 1 && r.Session != session {
					t.Fatalf("visit %d: session %q, want %q", i, r.Session, session)
				}
				session = r.Session
				seen[r.Backend] = true
			}
			if len(seen) != 2 {
				t.Fatalf("requests reached %v, want both instances", seen)
			}
			get("/login?user=alice")
			r := get("/")
			if r.User != "alice" || r.Counter != 5 || r.Session == session {
				t.Fatalf("after login: %+v, want user alice, counter 5 and a rotated session id", r)
			}
			get("/logout")
			if r := get("/"); r.User != "" || r.Counter != 1 {
				t.Fatalf("after logout: %+v, want a fresh session", r)
			}
			fmt.Fprintf(os.Stderr, "%s example: counter climbed across %v\n", ex.lang, seen)

			t.Run("one attribute of max_size", func(t *testing.T) {
				// The encoded session is a few dozen bytes over the value:
				// just under the default max_size of 64 KiB.
				checkLargeSession(t, base, map[string]string{"big": strings.Repeat("x", 64<<10-256)})
			})
			t.Run("120 attributes", func(t *testing.T) {
				// More header lines than Python's http.server takes by
				// default (100), and 60 KiB in all.
				attrs := map[string]string{}
				for i := range 120 {
					attrs[fmt.Sprintf("a%03d", i)] = strings.Repeat(string(rune('a'+i%26)), 500)
				}
				checkLargeSession(t, base, attrs)
			})
		})
	}
}

// checkLargeSession has a new user set attrs through POST /attrs, reads
// them back through both instances, and logs out. A backend that cannot
// take the session's headers answers 431 (Node, Python), and a proxy that
// cannot take the backend's answers 502.
func checkLargeSession(t *testing.T, base string, attrs map[string]string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	call := func(method, path string, body []byte) reply {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r reply
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("%s %s: %d %.200q", method, path, resp.StatusCode, b)
		}
		return r
	}
	body, _ := json.Marshal(attrs)
	set := call("POST", "/attrs", body)
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		r := call("GET", "/attrs", nil)
		if r.Session != set.Session || !maps.Equal(r.Attrs, attrs) {
			t.Fatalf("read back %d on %s: session %q (set under %q), %d attributes of %d bytes, want %d of %d",
				i+1, r.Backend, r.Session, set.Session, len(r.Attrs), size(r.Attrs), len(attrs), size(attrs))
		}
		seen[r.Backend] = true
	}
	if len(seen) != 2 {
		t.Fatalf("read back on %v, want both instances", seen)
	}
	if r := call("GET", "/", nil); r.Counter != 1 {
		t.Fatalf("counter beside the large session: %+v", r.Counter)
	}
	call("GET", "/logout", nil)
	if r := call("GET", "/attrs", nil); len(r.Attrs) != 0 || r.Session == set.Session {
		t.Fatalf("after logout: session %q with %d attributes, want a fresh empty one", r.Session, len(r.Attrs))
	}
}

func size(attrs map[string]string) (n int) {
	for k, v := range attrs {
		n += len(k) + len(v)
	}
	return n
}
