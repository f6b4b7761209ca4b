package sessionstore

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
)

// cluster is two real memcached nodes.
type cluster struct {
	n1, n2 *memcachedtest.Server
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{memcachedtest.Start(t), memcachedtest.Start(t)}
}

func (c *cluster) nodes() []Node {
	return []Node{{ID: "n1", Addr: c.n1.Addr}, {ID: "n2", Addr: c.n2.Addr}}
}

// encodedSession is a stored session of id at version, expiring in an hour.
func encodedSession(id []byte, version uint64) []byte {
	now := time.Now()
	s := Session{ID: id, Created: now.UnixMilli(), Version: version, Touched: now.Unix(), Expires: now.Unix() + 3600}
	return s.AppendEncode(nil)
}

func newStore(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Memcached.ProbeInterval == 0 {
		o.Memcached.ProbeInterval = 20 * time.Millisecond
	}
	if o.Memcached.Timeout == 0 {
		// Long enough that a loaded CI machine under -race does not mark a
		// healthy node down; short enough that frozen-node tests are quick.
		o.Memcached.Timeout = 300 * time.Millisecond
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func set(t *testing.T, s *Store, id []byte, create bool, kv ...string) *Session {
	t.Helper()
	var u Update
	for i := 0; i+1 < len(kv); i += 2 {
		if err := u.Set([]byte(kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	var out Session
	if err := s.change(id, &u, create, nil, &out); err != nil {
		t.Fatalf("Update(%s): %v", kv, err)
	}
	return &out
}

func load(t *testing.T, s *Store, id []byte) (string, error) {
	t.Helper()
	var out Session
	_, err := s.Load(id, &out)
	if err != nil {
		return "", err
	}
	return attrString(&out), nil
}

func mustLoad(t *testing.T, s *Store, id []byte, want string) {
	t.Helper()
	got, err := load(t, s, id)
	if err != nil || got != want {
		t.Fatalf("Load = %q, %v; want %q", got, err, want)
	}
}

// rawVersion reads the version a node holds for id directly, or -1.
func rawVersion(t *testing.T, addr, key string) int64 {
	t.Helper()
	it, err := memcachedtest.Get(addr, key)
	if errors.Is(err, memcachedtest.ErrMiss) {
		return -1
	}
	if err != nil {
		t.Fatalf("raw get from %s: %v", addr, err)
	}
	v, _, err := peekVersion(it.Value)
	if err != nil {
		t.Fatal(err)
	}
	return int64(v)
}

func TestPrimaryKilledNoLoss(t *testing.T) {
	c := startCluster(t)
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}}) // no local tier: every read goes to memcached
	ids := make([][]byte, 20)
	for i := range ids {
		ids[i] = AppendNewID(nil)
		set(t, s, ids[i], true, "n", fmt.Sprint(i))
	}
	c.n1.Stop()
	for round := 0; round < 3; round++ {
		for i, id := range ids {
			want := fmt.Sprintf("n=%d", i)
			if round > 0 {
				want += fmt.Sprintf(",round=%d", round-1)
			}
			mustLoad(t, s, id, want)
			set(t, s, id, false, "round", fmt.Sprint(round))
		}
	}
	if s.Nodes()[0].Up {
		t.Fatal("killed node n1 still marked up")
	}
	// Back, empty: reads take the newest copy and repair n1.
	c.n1.Restart()
	waitFor(t, "n1 back up", func() bool { return s.Nodes()[0].Up })
	for i, id := range ids {
		mustLoad(t, s, id, fmt.Sprintf("n=%d,round=2", i))
		if v := rawVersion(t, c.n1.Addr, "sp:"+string(id)); v != 4 {
			t.Fatalf("n1 not repaired: version %d, want 4", v)
		}
	}
}

func TestFrozenNodeNeverServesOldVersion(t *testing.T) {
	c := startCluster(t)
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}})
	id := AppendNewID(nil)
	set(t, s, id, true, "v", "old")
	c.n1.Freeze()
	start := time.Now()
	// A command already on its way when SIGSTOP lands runs on thaw, so n1
	// may end up with this first write; it cannot get the second.
	set(t, s, id, false, "v", "mid") // n1 times out and is marked down
	if s.Nodes()[0].Up {
		t.Fatal("frozen node still marked up")
	}
	set(t, s, id, false, "v", "new")
	for i := 0; i < 20; i++ { // no further request waits on the frozen node
		mustLoad(t, s, id, "v=new")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("requests kept waiting on the frozen node: %v", d)
	}
	c.n1.Thaw() // it holds an older version until the handoff is replayed
	waitFor(t, "n1 back up", func() bool { return s.Nodes()[0].Up })
	if v := rawVersion(t, c.n1.Addr, "sp:"+string(id)); v != 3 {
		t.Fatalf("thawed n1 holds version %d once up; the writes it missed were not replayed (want 3)", v)
	}
	if st := s.Nodes()[0]; st.HandoffReplayed == 0 || st.HandoffPending != 0 {
		t.Fatalf("handoff after thaw: %+v", st)
	}
	for i := 0; i < 5; i++ {
		mustLoad(t, s, id, "v=new")
	}
	// A write after the thaw builds on the new version, not n1's old one.
	set(t, s, id, false, "w", "1")
	mustLoad(t, s, id, "v=new,w=1")
	// And a store that never saw the outage reads the new version too.
	other := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}})
	mustLoad(t, other, id, "v=new,w=1")
}

// TestInvalidateMissedByFrozenNode: a memcached node that misses the
// delete of a session never brings it back once it answers again.
func TestInvalidateMissedByFrozenNode(t *testing.T) {
	c := startCluster(t)
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}, LocalSize: 1 << 20})
	id := AppendNewID(nil)
	set(t, s, id, true, "user", "bob")
	c.n2.Freeze()
	if err := s.Delete(id); err != nil { // n2 misses the delete
		t.Fatal(err)
	}
	if _, err := load(t, s, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load after Delete = %v", err)
	}
	c.n2.Thaw()
	waitFor(t, "n2 back", func() bool { return s.Nodes()[1].Up })
	other := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}})
	if _, err := load(t, other, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invalidated session came back from the node that missed the delete: %v", err)
	}
	// An update to an invalidated session does not revive it.
	var u Update
	u.Set([]byte("x"), []byte("1"))
	if err := other.change(id, &u, false, nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update after invalidate = %v, want ErrNotFound", err)
	}
}

func TestEmbeddedLocalOnly(t *testing.T) {
	s := newStore(t, Options{LocalSize: 1 << 20})
	if !s.Embedded() {
		t.Fatal("not embedded")
	}
	id := AppendNewID(nil)
	set(t, s, id, true, "a", "1")
	set(t, s, id, false, "b", "2")
	mustLoad(t, s, id, "a=1,b=2")
	if s.Dirty() != 0 {
		t.Fatal("embedded store counts dirty sessions")
	}
	if _, err := New(Options{}); err == nil {
		t.Fatal("New with no nodes and no local tier succeeded")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, what, cond)
}

func BenchmarkLoadLocal(b *testing.B) {
	s, _ := New(Options{LocalSize: 16 << 20})
	id := AppendNewID(nil)
	var u Update
	u.Set([]byte("user"), []byte("bob"))
	u.Set([]byte("visits"), []byte("12"))
	s.change(id, &u, true, nil, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var sess Session
		for pb.Next() {
			if _, err := s.Load(id, &sess); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoadShared is a cold read through the Store (no hot tier):
// both replicas read, the newest decoded, no allocation.
func BenchmarkLoadShared(b *testing.B) {
	n1, n2 := memcachedtest.Start(b), memcachedtest.Start(b)
	s, err := New(Options{Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}, Timeout: memcachedtest.BenchTimeout}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := make([][]byte, 256)
	var u Update
	u.Set([]byte("user"), []byte("bob"))
	for i := range ids {
		ids[i] = AppendNewID(nil)
		if err := s.change(ids[i], &u, true, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Uint32
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var sess Session
		for pb.Next() {
			if _, err := s.Load(ids[next.Add(1)%uint32(len(ids))], &sess); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdateMemcached(b *testing.B) {
	n1, n2 := memcachedtest.Start(b), memcachedtest.Start(b)
	s, _ := New(Options{Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}, Timeout: memcachedtest.BenchTimeout}, LocalSize: 16 << 20})
	defer s.Close()
	id := AppendNewID(nil)
	var u Update
	u.Set([]byte("visits"), []byte("12"))
	s.change(id, &u, true, nil, nil)
	b.ReportAllocs()
	b.ResetTimer()
	defer memcachedtest.ReportRusage(b, n1, n2)()
	for i := 0; i < b.N; i++ {
		if err := s.change(id, &u, false, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
