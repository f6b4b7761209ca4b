package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sessionproxy/config"
	"sessionproxy/internal/memcachedtest"
)

// TestReloadMovesAccessLog: a reload that changes access_log's path, or
// turns it off and on again, takes effect for the next request, as
// nginx's reload does; requests in flight across the reload (one waiting
// for its answer, one streaming its body) are logged to the file they
// started with, and that file is closed once no request uses it (long
// before the old settings' grace of timeouts.response); logrotate's
// SIGUSR1 still reopens the new path.
func TestReloadMovesAccessLog(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow": // the answer comes after the reload
			time.Sleep(1500 * time.Millisecond)
		case "/stream": // the headers before the reload, the end of the body after
			io.WriteString(w, "part one ")
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "A")
	}))
	defer app.Close()
	dir := t.TempDir()
	aLog, bLog := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	confWith := func(accessLog string) string {
		return strings.Replace(fmt.Sprintf(baseConfig, backendsYAML(app.URL)), "backends:", accessLog+"backends:", 1)
	}
	withPath := func(path string) string {
		return confWith(fmt.Sprintf("access_log:\n  format: combined\n  path: %q\n", path))
	}
	p := startProcess(t, withPath(aLog))
	get := func(path string) {
		t.Helper()
		resp, err := http.Get("http://" + p.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	reloads := 0
	reload := func(conf string) {
		t.Helper()
		p.write(conf)
		p.signal(syscall.SIGHUP)
		reloads++
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(p.stderr(), "config reloaded") < reloads {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d not logged:\n%s", reloads, p.stderr())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	get("/one")
	var inFlight sync.WaitGroup
	for _, path := range []string{"/slow", "/stream"} {
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			resp, err := http.Get("http://" + p.addr + path)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	time.Sleep(300 * time.Millisecond) // both are at the backend, /stream's headers relayed
	reload(withPath(bLog))
	get("/two")
	if !openFile(t, p, aLog) {
		t.Fatal("a.log closed while a request that started with it was in flight")
	}
	inFlight.Wait()
	waitClosed(t, p, aLog, 3*time.Second)
	waitFileHas(t, aLog, `"GET /slow HTTP/1.1" 200 1 `)
	waitFileHas(t, aLog, `"GET /stream HTTP/1.1" 200 10 `)
	waitFileHas(t, bLog, `"GET /two HTTP/1.1" 200`)
	fileLacks(t, aLog, "GET /two ")
	fileLacks(t, bLog, "GET /one ", "GET /slow", "GET /stream")

	reload(confWith("access_log: \"off\"\n"))
	get("/three")
	waitClosed(t, p, bLog, 3*time.Second)
	reload(withPath(bLog))
	get("/four")
	waitFileHas(t, bLog, `"GET /four HTTP/1.1" 200`)

	// logrotate still works on the path the reload gave.
	if err := os.Rename(bLog, bLog+".1"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	waitLog(t, p, "access log reopened")
	get("/five")
	waitFileHas(t, bLog, `"GET /five HTTP/1.1" 200`)
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	fileLacks(t, bLog+".1", "GET /five ", "GET /three ")
	fileLacks(t, bLog, "GET /three ")
	fileLacks(t, aLog, "GET /three ", "GET /four ", "GET /five ")
}

// openFile reports whether the process holds a descriptor on path.
func openFile(t *testing.T, p *process, path string) bool {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	entries, err := os.ReadDir(fds)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.TrimSuffix(target, " (deleted)") == path {
			return true
		}
	}
	return false
}

func waitClosed(t *testing.T, p *process, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for openFile(t, p, path) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still open %v after its last request", path, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFileHas waits for the writer's flush (every second) to put want in path.
func waitFileHas(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lacks %q:\n%s", path, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileLacks(t *testing.T, path string, unwanted ...string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	for _, u := range unwanted {
		if strings.Contains(string(b), u) {
			t.Errorf("%s holds %q:\n%s", path, u, b)
		}
	}
}

// TestFailedReloadClosesItsAccessLog: a reload whose new access_log file
// was opened but whose build then failed (here a static route's
// directory gone between check and build) closes that file: the old
// configuration keeps serving and the new file was left open for good.
func TestFailedReloadClosesItsAccessLog(t *testing.T) {
	app, _ := namedBackend(t, "A", 0)
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := func(logName string) *config.Config {
		t.Helper()
		c, err := config.Load([]byte(fmt.Sprintf("listen: 127.0.0.1:0\naccess_log:\n  format: combined\n  path: %q\nbackends:\n  - url: %q\nroutes:\n  - match: {path: /files/}\n    static: %q\n",
			filepath.Join(dir, logName), app.URL, site)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	logger := newLogger(io.Discard)
	prev, err := build(conf("a.log"), logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { prev.stop(); prev.store.Close(); prev.accessLog.Close() }()
	next := conf("b.log")
	if err := os.Remove(site); err != nil {
		t.Fatal(err)
	}
	if g, err := build(next, logger, prev); err == nil {
		g.stop()
		t.Fatal("build succeeded without the static route's directory")
	}
	if selfHolds(t, filepath.Join(dir, "b.log")) {
		t.Fatal("the failed reload left its access log file open")
	}
	if !selfHolds(t, filepath.Join(dir, "a.log")) {
		t.Fatal("the configuration in service lost its access log file")
	}
}

// selfHolds reports whether this process holds a descriptor on path.
func selfHolds(t *testing.T, path string) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == path {
			return true
		}
	}
	return false
}

// TestFailedReloadClosesItsStore: a reload to other memcached nodes that
// fails after the new store was opened (a static route's directory gone)
// closes that store; its connections to the new node, and the presence
// rounds that keep them busy, stayed for the life of the process.
func TestFailedReloadClosesItsStore(t *testing.T) {
	app, _ := namedBackend(t, "A", 0)
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := func(node string) *config.Config {
		t.Helper()
		c, err := config.Load([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nstate_dir: %q\nsession:\n  memcached:\n    nodes: [%q]\nbackends:\n  - url: %q\nroutes:\n  - match: {path: /files/}\n    static: %q\n",
			dir, node, app.URL, site)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	logger := newLogger(io.Discard)
	prev, err := build(conf(n1.Addr), logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { prev.stop(); prev.store.Close(); prev.accessLog.Close() }()
	idle := memcachedtest.Stat(t, n2.Addr, "curr_connections") // memcached's own, and the Stat's
	next := conf(n2.Addr)
	if err := os.Remove(site); err != nil {
		t.Fatal(err)
	}
	if g, err := build(next, logger, prev); err == nil {
		g.stop()
		t.Fatal("build succeeded without the static route's directory")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := memcachedtest.Stat(t, n2.Addr, "curr_connections")
		if n <= idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed reload's store still holds %d connections to its node", n-idle)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
