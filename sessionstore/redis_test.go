package sessionstore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
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

func TestRedisSessionLifecycle(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	if s.Kind() != "redis" || !s.Coherent() {
		t.Fatalf("kind %q coherent %v", s.Kind(), s.Coherent())
	}
	if _, err := load(t, s, AppendNewID(nil)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load(unknown) = %v, want ErrNotFound", err)
	}
	var u Update
	u.Set([]byte("a"), []byte("1"))
	if err := s.change(AppendNewID(nil), &u, false, nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("change(unknown, no create) = %v, want ErrNotFound", err)
	}

	id := AppendNewID(nil)
	first := set(t, s, id, true, "user", "bob")
	set(t, s, id, false, "cart", "3")
	fresh := newRedisStore(t, Options{Redis: redisOpts(srv.Addr)})
	mustLoad(t, fresh, id, "cart=3,user=bob")
	if ttl := srv.MustCLI("TTL", "sp:"+string(id)); !strings.HasPrefix(ttl, "2") { // 30m+¼ = 2250s
		t.Fatalf("TTL of the key = %q, want about 2250", ttl)
	}

	// Too large: nothing applied.
	small := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), MaxSize: 1024})
	u.Reset()
	u.Set([]byte("b"), []byte("2"))
	u.Set([]byte("big"), []byte(strings.Repeat("x", 2000)))
	if err := small.change(id, &u, false, nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("change = %v, want ErrTooLarge", err)
	}
	mustLoad(t, fresh, id, "cart=3,user=bob")

	// Rotation: the data moves, the old ID is a tombstone everywhere.
	newID := AppendNewID(nil)
	u.Reset()
	u.Rotate = true
	u.Set([]byte("user"), []byte("alice"))
	var out Session
	if err := s.change(id, &u, false, newID, &out); err != nil {
		t.Fatal(err)
	}
	if out.Created != first.Created {
		t.Fatalf("rotated session created %d, want %d", out.Created, first.Created)
	}
	mustLoad(t, fresh, newID, "cart=3,user=alice")
	for _, st := range []*Store{s, fresh} {
		if _, err := load(t, st, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old ID after rotate: %v", err)
		}
	}

	// Invalidation is final: a later change does not revive it.
	if err := s.Delete(newID); err != nil {
		t.Fatal(err)
	}
	u.Reset()
	u.Set([]byte("x"), []byte("1"))
	for _, st := range []*Store{s, fresh} {
		if _, err := load(t, st, newID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after Delete = %v", err)
		}
		if err := st.change(newID, &u, false, nil, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("change after Delete = %v, want ErrNotFound", err)
		}
	}
}

func TestRedisSlidingExpiry(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), TTL: 2 * time.Second})
	used, idle := AppendNewID(nil), AppendNewID(nil)
	set(t, s, used, true, "a", "1")
	set(t, s, idle, true, "a", "1")
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		var sess Session
		if _, err := s.Load(used, &sess); err != nil {
			t.Fatalf("used session expired: %v", err)
		}
		if s.needsRefresh(&sess) {
			var u Update
			if err := s.change(used, &u, false, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := load(t, s, idle); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idle session still there after twice its TTL: %v", err)
	}
	if out := srv.MustCLI("EXISTS", "sp:"+string(idle)); strings.TrimSpace(out) != "0" {
		t.Fatalf("redis still holds the idle session: %q", out)
	}
}

func TestRedisConcurrentDistinctAttributesAllKept(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cases := []struct {
		name string
		o    Options
	}{
		{"client cache", Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20}},
		{"local ttl", Options{Redis: RedisOptions{Addrs: []string{srv.Addr}}, LocalSize: 1 << 20, LocalTTL: time.Second}},
		{"no local tier", Options{Redis: RedisOptions{Addrs: []string{srv.Addr}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newRedisStore(t, tc.o), newRedisStore(t, tc.o)
			id := AppendNewID(nil)
			set(t, a, id, true, "start", "1")
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := 0; i < 40; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := a
					if i%2 == 1 {
						s = b
					}
					var u Update
					u.Set(fmt.Appendf(nil, "k%02d", i), fmt.Append(nil, i))
					if err := s.change(id, &u, false, nil, nil); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			fresh := newRedisStore(t, Options{Redis: RedisOptions{Addrs: []string{srv.Addr}}})
			var got Session
			if _, err := fresh.Load(id, &got); err != nil {
				t.Fatal(err)
			}
			if got.Len() != 41 {
				t.Fatalf("session has %d attributes after 40 concurrent sets, want 41: %s", got.Len(), attrString(&got))
			}
		})
	}
}

// TestRedisClientCacheAcrossStores is two proxies' stores on one server:
// hot reads cost no command at all, and a change or logout through one is
// seen by the other's next read within 100 ms.
func TestRedisClientCacheAcrossStores(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	b := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
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

func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	id := AppendNewID(nil)
	set(t, s, id, true, "v", "1")
	srv.Stop()
	testutil.WaitFor(t, 5*time.Second, "status down", func() bool { return !s.Nodes()[0].Up })
	if _, err := load(t, s, AppendNewID(nil)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Load while redis is down = %v, want ErrUnavailable", err)
	}
	noLocal := newRedisStore(t, Options{Redis: redisOpts(srv.Addr)})
	var u Update
	u.Set([]byte("v"), []byte("2"))
	if err := noLocal.change(id, &u, false, nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("change while redis is down, no hot tier = %v, want ErrUnavailable", err)
	}
	srv.Restart() // without AOF: empty
	testutil.WaitFor(t, 5*time.Second, "status up", func() bool { return s.Nodes()[0].Up })
	id2 := AppendNewID(nil)
	testutil.WaitFor(t, 5*time.Second, "writes again", func() bool {
		var u Update
		u.Set([]byte("v"), []byte("3"))
		return s.change(id2, &u, true, nil, nil) == nil
	})
	testutil.WaitFor(t, 5*time.Second, "the other store connected", func() bool { _, err := load(t, noLocal, id2); return err == nil })
	mustLoad(t, noLocal, id2, "v=3")
}

func TestRedisStartsWhileServerDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Stop()
	s := newRedisStore(t, Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20})
	if _, err := load(t, s, AppendNewID(nil)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Load before redis ever answered = %v, want ErrUnavailable", err)
	}
	srv.Restart()
	id := AppendNewID(nil)
	testutil.WaitFor(t, 5*time.Second, "connected", func() bool {
		var u Update
		u.Set([]byte("v"), []byte("1"))
		return s.change(id, &u, true, nil, nil) == nil
	})
	if !s.Coherent() {
		t.Fatal("not coherent")
	}
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
	testutil.WaitFor(t, 10*time.Second, "replica in sync", func() bool {
		out, _ := replica.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up")
	})
	s := newRedisStore(t, Options{Redis: RedisOptions{Addrs: []string{master.Addr}, WaitReplicas: 1}})
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
