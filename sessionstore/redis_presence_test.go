package sessionstore

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
	"sessionproxy/internal/testutil"
)

// TestRedisWaitReplicasNotKept: with wait_replicas and a hot tier, a write
// the replica did not acknowledge is an error (ErrUnavailable,
// ErrNotReplicated), never kept in the hot tier to be written back and
// answered as done; a logout likewise. Before issue 22's fix the Store
// kept it, and the client got the backend's answer.
func TestRedisWaitReplicasNotKept(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", master.Port}})
	testutil.WaitFor(t, 10*time.Second, "replica in sync", func() bool {
		out, _ := replica.CLI("INFO", "replication")
		m, _ := master.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up") && strings.Contains(m, "state=online")
	})
	for _, cc := range []bool{true, false} { // casMode, and trustedMode's Put
		s := newRedisStore(t, Options{LocalSize: 1 << 20, LocalTTL: AutoTTL,
			Redis: RedisOptions{Addrs: []string{master.Addr}, WaitReplicas: 1, ClientCache: cc}})
		id := AppendNewID(nil)
		// The first write after the replica came online may wait for its
		// first acknowledgement (up to a second): try until one counts.
		testutil.WaitFor(t, 5*time.Second, "a write acknowledged", func() bool {
			var u Update
			u.Set([]byte("v"), []byte("1"))
			return s.change(id, &u, true, nil, nil) == nil
		})
		replica.Freeze()
		var u Update
		u.Set([]byte("v"), []byte("2"))
		err := s.change(id, &u, false, nil, nil)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("client_cache %v: a write the replica did not acknowledge = %v, want ErrUnavailable and ErrNotReplicated", cc, err)
		}
		if err := s.Delete(id); !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("client_cache %v: a logout the replica did not acknowledge = %v", cc, err)
		}
		if err := s.change(AppendNewID(nil), &u, true, nil, nil); !errors.Is(err, ErrNotReplicated) {
			t.Fatalf("client_cache %v: a new session the replica did not acknowledge = %v", cc, err)
		}
		if n := s.Dirty(); n != 0 {
			t.Fatalf("client_cache %v: %d writes kept for writing back", cc, n)
		}
		// The master may hold the refused writes (they did not count, but
		// WAIT cannot undo them): nothing more to check there.
		replica.Thaw()
	}
}

// logBuffer is a slog handler's output, safe for the store's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRedisPresence: without client_cache, stores on one Redis keep
// presence marks there and bound their hot tiers under AutoTTL; with
// client_cache they keep none (the server's invalidations keep the tiers
// coherent) and trust their hot tiers.
func TestRedisPresence(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	opts := func(cc bool) Options {
		return Options{LocalSize: 1 << 20, LocalTTL: AutoTTL,
			Redis: RedisOptions{Addrs: []string{srv.Addr}, ClientCache: cc, ProbeInterval: 100 * time.Millisecond}}
	}
	a := newRedisStore(t, opts(false))
	if a.Crowded() {
		t.Fatal("a store alone on redis is crowded")
	}
	var log logBuffer
	bo := opts(false)
	bo.Logger = slog.New(slog.NewTextHandler(&log, nil))
	b := newRedisStore(t, bo)
	if !b.Crowded() {
		t.Fatal("a store started beside another does not see it before its first request")
	}
	testutil.WaitFor(t, 2*time.Second, "a sees b", a.Crowded)
	if !strings.Contains(log.String(), "another proxy seen on the redis nodes; local cache ttl 1s") {
		t.Fatalf("log: %s", log.String())
	}
	c := newRedisStore(t, opts(true))
	time.Sleep(300 * time.Millisecond)
	if c.Crowded() {
		t.Fatal("a store with client_cache is bounded")
	}
	if n := strings.TrimSpace(srv.MustCLI("ZCARD", "sp:proxies")); n != "2" {
		t.Fatalf("marks on redis: %s, want 2 (none for the store with client_cache)", n)
	}
	b.Close()
	testutil.WaitFor(t, MarkTTL(100*time.Millisecond)+2*time.Second, "a alone again", func() bool { return !a.Crowded() })
}

// TestAsyncAnotherProxyLogged: with write: async, auto means 0 (the hot
// tier stays authoritative) and another proxy on the nodes is logged as an
// error, once.
func TestAsyncAnotherProxyLogged(t *testing.T) {
	c := startCluster(t)
	var log logBuffer
	a := newStore(t, Options{LocalSize: 1 << 20, LocalTTL: AutoTTL, Async: true,
		Logger:    slog.New(slog.NewTextHandler(&log, nil)),
		Memcached: MemcachedOptions{Nodes: c.nodes(), ProbeInterval: 100 * time.Millisecond}})
	autoStore(t, c, AutoTTL)
	testutil.WaitFor(t, 2*time.Second, "the async store logs the other", func() bool {
		return strings.Contains(log.String(), "level=ERROR msg=\"another proxy seen on the memcached nodes: write: async needs one proxy per set of sessions")
	})
	if a.Crowded() {
		t.Fatal("an async store bounded its hot tier")
	}
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(log.String(), "another proxy seen"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, log.String())
	}
}

func TestCheckLocalTTL(t *testing.T) {
	tests := []struct {
		o    Options
		want error
	}{
		{Options{LocalSize: 1 << 20, LocalTTL: -2}, ErrBadLocalTTL},
		{Options{LocalSize: 1 << 20, LocalTTL: AutoTTL}, nil},
		{Options{LocalSize: 1 << 20, LocalTTL: AutoTTL, Async: true}, nil},
		{Options{LocalSize: 1 << 20, LocalTTL: time.Second, Async: true}, ErrAsyncNeedsLocal},
		{Options{LocalSize: 1 << 20, Async: true, Redis: RedisOptions{Addrs: []string{"a:1"}, WaitReplicas: 1}}, ErrAsyncWaitReplicas},
	}
	for _, tc := range tests {
		if err := tc.o.Check(); !errors.Is(err, tc.want) {
			t.Errorf("Check(%+v) = %v, want %v", tc.o, err, tc.want)
		}
	}
}
