package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// defaultMemcachedConfig is the shipped defaults over two memcached nodes:
// nothing else set (access log on, local_cache.ttl auto).
func defaultMemcachedConfig(backend string, nodes ...*memcachedtest.Server) string {
	return fmt.Sprintf(`listen: "{{listen}}"
backends:
  - url: %q
session:
  memcached:
    nodes: [%q, %q]
`, backend, nodes[0].Addr, nodes[1].Addr)
}

// accessLines returns the access log lines of p for path (text format:
// "path=/ "), waiting until there are at least want: the log is flushed
// every second.
func accessLines(p *process, path string, want int) []string {
	deadline := time.Now().Add(3 * time.Second)
	for {
		var out []string
		for _, l := range strings.Split(p.stderr(), "\n") {
			if strings.Contains(l, "msg=access") && strings.Contains(l, " path="+path+" ") {
				out = append(out, l)
			}
		}
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func memcachedGets(t *testing.T, nodes ...*memcachedtest.Server) int64 {
	var n int64
	for _, s := range nodes {
		n += memcachedtest.Stat(t, s.Addr, "cmd_get")
	}
	return n
}

// TestTwoProxiesDefaultConfig: two proxy processes with the default
// configuration over the same two memcached nodes stay coherent: after a
// logout through A, B (which had the session in its hot tier) answers
// with a fresh session within 1.5s (issue 22: B served the logged-out
// session for as long as its hot tier kept it). A proxy alone keeps
// trusting its hot tier: hot reads cost the nodes nothing.
func TestTwoProxiesDefaultConfig(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	app := attrBackend(t)
	cfg := defaultMemcachedConfig(app.URL, n1, n2)
	a := startProcess(t, cfg)
	A := "http://" + a.addr

	// Alone: as ttl 0.
	_, id := fetchV(t, A+"/?set=ann", "")
	if id == "" {
		t.Fatal("no session cookie from A")
	}
	before := memcachedGets(t, n1, n2)
	for i := 0; i < 50; i++ {
		if v, _ := fetchV(t, A+"/", id); v != "ann" {
			t.Fatalf("hot read through A: v=%q", v)
		}
	}
	// A presence round (one get of the roster on each node a second) may
	// fall in the window; 50 reads from the nodes would be 100 gets.
	if n := memcachedGets(t, n1, n2) - before; n > 6 {
		t.Fatalf("50 hot reads through a proxy alone cost the nodes %d gets: its hot tier is not trusted", n)
	}
	// The write that made the session, then the 50 reads.
	if got := accessLines(a, "/", 51); len(got) != 51 || strings.Count(strings.Join(got[1:], "\n"), "session=local") != 50 {
		t.Fatalf("hot reads through a proxy alone: %d access lines, want 1+50 with session=local:\n%s", len(got), strings.Join(got, "\n"))
	}
	if strings.Contains(a.stderr(), "another proxy") {
		t.Fatalf("a proxy alone logged another proxy:\n%s", a.stderr())
	}

	b := startProcess(t, cfg)
	B := "http://" + b.addr
	// A sees B within a presence round (1s); B saw A before its first
	// request.
	waitLog(t, a, "another proxy seen")
	// B reads the session, then again from its hot tier.
	for i := 0; i < 2; i++ {
		if v, _ := fetchV(t, B+"/", id); v != "ann" {
			t.Fatalf("read through B: v=%q, want ann", v)
		}
	}
	if got := strings.Join(accessLines(b, "/", 2), "\n"); !strings.Contains(got, "session=local") {
		t.Fatalf("B does not cache the session (the case under test):\n%s", got)
	}
	fetchV(t, A+"/?logout=1", id)
	start := time.Now()
	for {
		v, _ := fetchV(t, B+"/", id)
		if v == "-" {
			break
		}
		if time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("logout through A: B still serves the session (v=%q) %v later", v, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Each logged seeing the other once.
	for name, p := range map[string]*process{"A": a, "B": b} {
		if n := strings.Count(p.stderr(), "another proxy seen on the memcached nodes; local cache ttl 1s"); n != 1 {
			t.Errorf("%s logged %d times that it saw another proxy, want once:\n%s", name, n, p.stderr())
		}
	}
}
