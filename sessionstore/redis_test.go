package sessionstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
	"sessionproxy/internal/testutil"
)

func newRedisStore(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Redis.Timeout == 0 {
		o.Redis.Timeout = 500 * time.Millisecond // a loaded machine under -race
	}
	if o.Redis.ProbeInterval == 0 {
		o.Redis.ProbeInterval = 50 * time.Millisecond
	}
	return newStore(t, o)
}

func redisOpts(addrs ...string) RedisOptions { return RedisOptions{Addrs: addrs, ClientCache: true} }

// TestRedisClientCacheAcrossStores is two proxies' stores on one server:
// hot reads cost no command at all, and a change or logout through one is
// seen by the other's next read within 100 ms.
func TestRedisClientCacheAcrossStores(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	b := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	if a.Kind() != "redis" || !a.Coherent() {
		t.Fatalf("kind %q coherent %v", a.Kind(), a.Coherent())
	}
	id := AppendNewID(nil)
	set(t, a, id, true, "v", "1")
	mustLoad(t, b, id, "v=1")

	srv.ResetStats()
	for i := 0; i < 200; i++ {
		mustLoad(t, a, id, "v=1")
		mustLoad(t, b, id, "v=1")
	}
	if n := srv.Calls("get"); n > 2 { // at most one refill each after A's own write's invalidation
		t.Fatalf("400 hot reads sent %d GETs to redis", n)
	}
	srv.ResetStats()
	for i := 0; i < 200; i++ {
		mustLoad(t, a, id, "v=1")
		mustLoad(t, b, id, "v=1")
	}
	if n := srv.Calls("get"); n != 0 {
		t.Fatalf("hot reads sent %d GETs to redis, want 0", n)
	}

	for i := 2; i < 12; i++ {
		want := fmt.Sprintf("v=%d", i)
		set(t, a, id, false, "v", fmt.Sprint(i))
		seen := seenWithin(t, b, id, want)
		if seen > 100*time.Millisecond {
			t.Fatalf("change %d through A seen by B after %v, want within 100ms", i, seen)
		}
	}
	if err := a.Delete(id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, err := load(t, b, id); errors.Is(err, ErrNotFound) {
			break
		}
		if time.Since(start) > 100*time.Millisecond {
			t.Fatal("logout through A still served by B after 100ms")
		}
		time.Sleep(time.Millisecond)
	}
}

// seenWithin polls s until id reads as want and returns how long it took
// (failing the test after 5 s).
func seenWithin(t *testing.T, s *Store, id []byte, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got, _ := load(t, s, id); got == want {
			return time.Since(start)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%q never seen", want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRedisLostConnectionClearsHotTier: invalidations sent while the
// connection was down are lost, so a lost connection must empty the hot
// tier rather than leave copies nothing will evict.
func TestRedisLostConnectionClearsHotTier(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	id := AppendNewID(nil)
	set(t, s, id, true, "v", "1")
	mustLoad(t, s, id, "v=1")
	srv.MustCLI("CLIENT", "KILL", "TYPE", "normal")
	testutil.WaitFor(t, 5*time.Second, "hot tier cleared", func() bool {
		n, _ := s.LocalStats()
		return n == 0
	})
	mustLoad(t, s, id, "v=1")
}

func TestRedisAOFRestartKeepsSessions(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	s := newRedisStore(t, Options{Redis: redisOpts(srv.Addr)})
	var ids [][]byte
	for i := 0; i < 50; i++ {
		id := AppendNewID(nil)
		set(t, s, id, true, "n", fmt.Sprint(i))
		ids = append(ids, id)
	}
	if err := s.Delete(ids[0]); err != nil {
		t.Fatal(err)
	}
	srv.Restart() // SIGKILL, then the same directory: the AOF is replayed
	fresh := newRedisStore(t, Options{Redis: redisOpts(srv.Addr)})
	testutil.WaitFor(t, 5*time.Second, "redis back", func() bool { _, err := load(t, fresh, ids[1]); return err == nil })
	for i, id := range ids[1:] {
		mustLoad(t, fresh, id, fmt.Sprintf("n=%d", i+1))
	}
	if _, err := load(t, fresh, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invalidated session after AOF restart: %v", err)
	}
}

func TestRedisAuth(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "s3cret"})
	srv.MustCLI("ACL", "SETUSER", "proxy", "on", ">pw", "~sp:*", "+@all")
	good := []RedisOptions{
		{Addrs: []string{srv.Addr}, Password: "s3cret", ClientCache: true},
		{Addrs: []string{srv.Addr}, Username: "proxy", Password: "pw", ClientCache: true},
	}
	for _, o := range good {
		s := newRedisStore(t, Options{Redis: o, LocalSize: 1 << 20})
		set(t, s, AppendNewID(nil), true, "a", "1")
	}
	bad := newRedisStore(t, Options{Redis: RedisOptions{Addrs: []string{srv.Addr}, Password: "wrong"}})
	if _, err := load(t, bad, AppendNewID(nil)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Load with a wrong password = %v, want ErrUnavailable", err)
	}
}

// TestRedisWaitReplicas: with wait_replicas 1 a write counts only once the
// replica has it; without a replica it does not count.
func TestRedisWaitReplicas(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", master.Port}})
	// Both sides must see the link: the replica up, and the master
	// counting it online, or WAIT 1 times out on a loaded machine.
	testutil.WaitFor(t, 10*time.Second, "replica in sync", func() bool {
		out, _ := replica.CLI("INFO", "replication")
		m, _ := master.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up") && strings.Contains(m, "state=online")
	})
	// A second for the replica to acknowledge: 100ms is tight on a loaded machine.
	s := newRedisStore(t, Options{Redis: RedisOptions{Addrs: []string{master.Addr}, WaitReplicas: 1, Timeout: time.Second}})
	id := AppendNewID(nil)
	set(t, s, id, true, "v", "1")
	if out := replica.MustCLI("EXISTS", "sp:"+string(id)); strings.TrimSpace(out) != "1" {
		t.Fatalf("acknowledged write not on the replica: %q", out)
	}
	if n := master.Calls("wait"); n == 0 {
		t.Fatal("no WAIT sent")
	}
	replica.Stop()
	var u Update
	u.Set([]byte("v"), []byte("2"))
	if err := s.change(id, &u, false, nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write without its replica = %v, want ErrUnavailable", err)
	}
}

func TestRedisOptionsCheck(t *testing.T) {
	tests := []struct {
		o    Options
		want error
	}{
		{Options{Redis: RedisOptions{Addrs: []string{"a:1"}}, Memcached: MemcachedOptions{Nodes: []Node{{ID: "n", Addr: "b:1"}}}}, ErrTwoStores},
		{Options{Redis: RedisOptions{Addrs: []string{"a:1"}, ClientCache: true}, Async: true, LocalSize: 1 << 20}, ErrAsyncClientCache},
		{Options{Redis: RedisOptions{Addrs: []string{"a:1"}}, Async: true, LocalSize: 1 << 20}, nil},
		{Options{Redis: RedisOptions{Addrs: []string{"a:1"}}}, nil},
	}
	for _, tc := range tests {
		if err := tc.o.Check(); !errors.Is(err, tc.want) {
			t.Errorf("Check(%+v) = %v, want %v", tc.o, err, tc.want)
		}
	}
}
