// Package examples_test runs each example backend, two instances of it,
// behind the proxy with two real memcached nodes, as a user would.
package examples_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"sessionproxy/balancer"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
	"sessionproxy/proxy"
	"sessionproxy/sessionstore"
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
	store, err := sessionstore.New(sessionstore.Options{
		Nodes:     []sessionstore.Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr, Failover: true}},
		LocalSize: 1 << 20,
		Timeout:   300 * time.Millisecond,
	})
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
	p := &proxy.Proxy{Pool: pool, Retries: 1, Sessions: &proxy.Sessions{Store: store}}
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
	Backend string `json:"backend"`
	Session string `json:"session"`
	User    string `json:"user"`
	Counter int    `json:"counter"`
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
		})
	}
}
