package sessionstore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/storetest"
)

// storeEnv is one test case's view of a shared store deployment: a key
// prefix of its own, and stores over it.
type storeEnv struct {
	d      *storetest.Deployment
	prefix string
}

func newStoreEnv(d *storetest.Deployment) *storeEnv {
	return &storeEnv{d: d, prefix: d.Prefix()}
}

// options returns o with the deployment as its shared store: the two
// memcached nodes with replicas: 2, or Redis with client-side caching.
func (e *storeEnv) options(o Options) Options {
	if e.d.Kind.Redis {
		o.Redis = RedisOptions{Addrs: e.d.Addrs(), KeyPrefix: e.prefix, ClientCache: true,
			Timeout: 2 * time.Second, ProbeInterval: 50 * time.Millisecond} // a loaded machine under -race
		return o
	}
	o.Memcached.KeyPrefix = e.prefix
	o.Memcached.Nodes = nil
	for i, a := range e.d.Addrs() {
		o.Memcached.Nodes = append(o.Memcached.Nodes, Node{ID: fmt.Sprintf("n%d", i+1), Addr: a})
	}
	return o
}

func (e *storeEnv) store(t *testing.T, o Options) *Store {
	t.Helper()
	return newStore(t, e.options(o))
}

// uncached is store without Redis' client-side caching: its hot tier is
// trusted (one proxy) or re-read after LocalTTL, as with memcached.
func (e *storeEnv) uncached(t *testing.T, o Options) *Store {
	t.Helper()
	o = e.options(o)
	o.Redis.ClientCache = false
	return newStore(t, o)
}

func (e *storeEnv) key(id []byte) string { return e.prefix + string(id) }

// storeBehaviours are what every kind of shared store must do.
var storeBehaviours = []struct {
	name string
	test func(t *testing.T, e *storeEnv)
}{
	{"shared across stores", testSharedAcrossStores},
	{"unknown id not found", testUnknownIDNotFound},
	{"concurrent distinct attributes all kept", testConcurrentDistinctAttributes},
	{"too large not applied", testTooLargeNotApplied},
	{"invalidation is final", testInvalidationIsFinal},
	{"rotate", testRotate},
	{"rotation keeps a write that races it", testRotationKeepsARacingWrite},
	{"sliding expiry", testSlidingExpiry},
	{"hot tier too small for an entry", testLocalTierTooSmallForEntry},
	{"local ttl rereads", testLocalTTLRereads},
	{"rotation race follows the new id", testRotationRaceFollowsNewID},
	{"async read your writes", testAsyncReadYourWrites},
	{"async queue full writes inline", testAsyncQueueFullWritesInline},
	{"async newer never overwritten by older", testAsyncNewerNeverOverwrittenByOlder},
}

// TestStoreBehaviours runs every store behaviour against each kind of
// shared store, on real servers, each case under a key prefix of its own.
func TestStoreBehaviours(t *testing.T) {
	var cases []storetest.Case
	for _, b := range storeBehaviours {
		cases = append(cases, storetest.Case{Name: b.name, Test: func(t *testing.T, d *storetest.Deployment) { b.test(t, newStoreEnv(d)) }})
	}
	storetest.RunEach(t, storetest.Kinds, cases)
}

// sharedVersion is the version of the shared store's copy of id.
func sharedVersion(t *testing.T, s *Store, id []byte) uint64 {
	t.Helper()
	v, err := s.shared.Get(id)
	if err != nil {
		t.Fatalf("shared Get: %v", err)
	}
	ver, _, err := peekVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

func testSharedAcrossStores(t *testing.T, e *storeEnv) {
	a := e.store(t, Options{LocalSize: 1 << 20})
	b := e.store(t, Options{LocalSize: 1 << 20})
	id := AppendNewID(nil)
	out := set(t, a, id, true, "user", "bob")
	if out.Version != 1 || out.Created == 0 {
		t.Fatalf("new session %+v", out)
	}
	var got Session
	src, err := b.Load(id, &got)
	if err != nil || src != FromShared || attrString(&got) != "user=bob" || got.Created != out.Created {
		t.Fatalf("other store Load = %v %v %q", src, err, attrString(&got))
	}
	// With client-side caching, a's own write is reported to b too and
	// may evict b's copy once more: the hot tier serves it after that.
	waitFor(t, "a load from the hot tier", func() bool { src, _ := b.Load(id, &got); return src == FromLocal })
	if n := e.d.Copies(t, e.key(id)); n != e.d.Replicas() {
		t.Fatalf("%d servers hold the session, want %d", n, e.d.Replicas())
	}
	if v := sharedVersion(t, b, id); v != 1 {
		t.Fatalf("the shared store holds version %d, want 1", v)
	}
	// Expiry on the servers: the TTL (30m) and a quarter more, so that a
	// session refreshed late in its life never expires under its user.
	for _, ttl := range e.d.TTLs(t, e.key(id)) {
		if ttl < 30*time.Minute || ttl > 38*time.Minute {
			t.Fatalf("a copy expires in %v, want 30m and a quarter", ttl)
		}
	}
}

func testUnknownIDNotFound(t *testing.T, e *storeEnv) {
	s := e.store(t, Options{LocalSize: 1 << 20})
	if _, err := load(t, s, AppendNewID(nil)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load(unknown) = %v, want ErrNotFound", err)
	}
	var u Update
	u.Set([]byte("a"), []byte("1"))
	if err := s.change(AppendNewID(nil), &u, false, nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("change(unknown, no create) = %v, want ErrNotFound", err)
	}
}

func testConcurrentDistinctAttributes(t *testing.T, e *storeEnv) {
	type storeCase struct {
		name string
		mk   func(t *testing.T) *Store // nil: one store does every write
	}
	cases := []storeCase{
		{"one store", nil},
		// Several proxies sharing the store re-read after
		// local_cache.ttl and merge their writes on the store.
		{"two stores, local ttl", func(t *testing.T) *Store {
			return e.uncached(t, Options{LocalSize: 1 << 20, LocalTTL: time.Second})
		}},
		{"two stores, no hot tier", func(t *testing.T) *Store { return e.store(t, Options{}) }},
	}
	if e.d.Kind.Redis {
		cases = append(cases, storeCase{"two stores, client cache", func(t *testing.T) *Store { return e.store(t, Options{LocalSize: 1 << 20}) }})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a, b *Store
			if tc.mk == nil {
				a = e.uncached(t, Options{LocalSize: 1 << 20})
				b = a
			} else {
				a, b = tc.mk(t), tc.mk(t)
			}
			concurrentSets(t, e, a, b)
		})
	}
}

// concurrentSets sets 40 distinct attributes at once, alternating between
// stores a and b, and checks that all were kept.
func concurrentSets(t *testing.T, e *storeEnv, a, b *Store) {
	t.Helper()
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
	var got Session
	if _, err := e.store(t, Options{}).Load(id, &got); err != nil {
		t.Fatal(err)
	}
	if got.Len() != 41 {
		t.Fatalf("session has %d attributes after 40 concurrent sets, want 41: %s", got.Len(), attrString(&got))
	}
}

func testTooLargeNotApplied(t *testing.T, e *storeEnv) {
	s := e.store(t, Options{LocalSize: 1 << 20, MaxSize: 1024})
	id := AppendNewID(nil)
	set(t, s, id, true, "a", "1")
	var u Update
	u.Set([]byte("b"), []byte("2"))
	u.Set([]byte("big"), []byte(strings.Repeat("x", 2000)))
	if err := s.change(id, &u, false, nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("change = %v, want ErrTooLarge", err)
	}
	mustLoad(t, s, id, "a=1")
	mustLoad(t, e.store(t, Options{}), id, "a=1")
}

func testInvalidationIsFinal(t *testing.T, e *storeEnv) {
	s := e.store(t, Options{LocalSize: 1 << 20})
	other := e.store(t, Options{LocalSize: 1 << 20})
	id := AppendNewID(nil)
	set(t, s, id, true, "user", "bob")
	mustLoad(t, other, id, "user=bob")
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	fresh := e.store(t, Options{})
	var u Update
	u.Set([]byte("x"), []byte("1"))
	for _, st := range []*Store{s, fresh} {
		if _, err := load(t, st, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after Delete = %v", err)
		}
		// A change to an invalidated session does not revive it.
		if err := st.change(id, &u, false, nil, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("change after Delete = %v, want ErrNotFound", err)
		}
	}
	if e.d.Kind.Redis { // other's hot tier is told; memcached's trusts it until local_cache.ttl
		waitFor(t, "the other store's hot tier evicts it", func() bool {
			_, err := load(t, other, id)
			return errors.Is(err, ErrNotFound)
		})
	}
}

func testRotate(t *testing.T, e *storeEnv) {
	s := e.store(t, Options{LocalSize: 1 << 20})
	id := AppendNewID(nil)
	first := set(t, s, id, true, "cart", "3")
	newID := AppendNewID(nil)
	var u Update
	u.Rotate = true
	u.Set([]byte("user"), []byte("alice"))
	var out Session
	if err := s.change(id, &u, false, newID, &out); err != nil {
		t.Fatal(err)
	}
	if string(out.ID) != string(newID) || out.Created != first.Created {
		t.Fatalf("rotated session %q created %d, want %q created %d", out.ID, out.Created, newID, first.Created)
	}
	fresh := e.store(t, Options{})
	mustLoad(t, s, newID, "cart=3,user=alice")
	mustLoad(t, fresh, newID, "cart=3,user=alice")
	for _, st := range []*Store{s, fresh} { // the old ID is a tombstone everywhere
		if _, err := load(t, st, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old ID after rotate: %v", err)
		}
	}
}

// testRotationKeepsARacingWrite: another proxy's write to the old ID that
// lands after a rotation read the session and before its tombstone is
// carried into the new session, not buried under the tombstone (the fault
// harness's finding B: confirmed writes lost for good).
func testRotationKeepsARacingWrite(t *testing.T, e *storeEnv) {
	a := e.store(t, Options{LocalSize: 1 << 20})
	b := e.store(t, Options{LocalSize: 1 << 20})
	id := AppendNewID(nil)
	set(t, a, id, true, "cart", "3")
	a.shared = &beforeMerge{Shared: a.shared, id: id, do: func() { set(t, b, id, false, "paid", "yes") }}
	newID := AppendNewID(nil)
	var u Update
	u.Rotate = true
	u.Set([]byte("user"), []byte("alice"))
	if err := a.change(id, &u, false, newID, nil); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, e.store(t, Options{}), newID, "cart=3,paid=yes,user=alice")
	if _, err := load(t, e.store(t, Options{}), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old ID after the rotation: %v", err)
	}
}

// beforeMerge is the real shared store with one hook: do runs once, just
// before the first Merge of id, as another process's write would land.
type beforeMerge struct {
	Shared
	id   []byte
	do   func()
	done bool
}

func (m *beforeMerge) Merge(id []byte, mg Merger) error {
	if !m.done && string(id) == string(m.id) {
		m.done = true
		m.do()
	}
	return m.Shared.Merge(id, mg)
}

func testSlidingExpiry(t *testing.T, e *storeEnv) {
	s := e.store(t, Options{TTL: 2 * time.Second})
	used, idle := AppendNewID(nil), AppendNewID(nil)
	set(t, s, used, true, "a", "1")
	set(t, s, idle, true, "a", "1")
	// Use one session every 500ms for 4s (twice the TTL), refreshing when due.
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
	if n := e.d.Copies(t, e.key(idle)); n != 0 {
		t.Fatalf("%d servers still hold the idle session", n)
	}
}

func testLocalTierTooSmallForEntry(t *testing.T, e *storeEnv) {
	// freecache takes entries up to about 1/1024 of its size: 512 bytes here.
	s := e.store(t, Options{LocalSize: 512 << 10})
	id := AppendNewID(nil)
	set(t, s, id, true, "big", strings.Repeat("x", 4000))
	var got Session
	src, err := s.Load(id, &got)
	if err != nil || src != FromShared {
		t.Fatalf("Load of an entry too big for the hot tier = %v, %v", src, err)
	}
}

func testLocalTTLRereads(t *testing.T, e *storeEnv) {
	a := e.uncached(t, Options{LocalSize: 1 << 20, LocalTTL: time.Second})
	b := e.uncached(t, Options{LocalSize: 1 << 20, LocalTTL: time.Second})
	id := AppendNewID(nil)
	set(t, a, id, true, "v", "1")
	mustLoad(t, b, id, "v=1")
	set(t, a, id, false, "v", "2")
	waitFor(t, "b re-reads after its local ttl", func() bool {
		got, _ := load(t, b, id)
		return got == "v=2"
	})
}

// A request that began before a rotation follows the session to its new ID;
// one that began after it gets nothing.
func testRotationRaceFollowsNewID(t *testing.T, e *storeEnv) {
	for _, local := range []int{0, 1 << 20} {
		t.Run(fmt.Sprintf("local=%d", local), func(t *testing.T) {
			s := e.store(t, Options{LocalSize: local})
			old := AppendNewID(nil)
			set(t, s, old, true, "cart", "1")
			slowBegan := time.Now().UnixMilli() - 1 // a slow request started with the old cookie

			var rot Update
			rot.Rotate = true
			rot.Set([]byte("user"), []byte("bob"))
			newID := AppendNewID(nil)
			if err := s.change(old, &rot, false, newID, nil); err != nil {
				t.Fatal(err)
			}
			// The slow request answers now and adds to the cart.
			var slow Update
			slow.Begun = slowBegan
			slow.Set([]byte("cart"), []byte("2"))
			var out Session
			if err := s.change(old, &slow, false, nil, &out); err != nil {
				t.Fatalf("update racing the rotation: %v", err)
			}
			if string(out.ID) != string(newID) {
				t.Fatalf("update went to %s, want the new ID", out.ID)
			}
			mustLoad(t, s, newID, "cart=2,user=bob")
			if _, err := load(t, s, old); !errors.Is(err, ErrNotFound) {
				t.Fatalf("old ID still loads: %v", err)
			}
			// A request that began after the rotation never follows it.
			var late Update
			late.Begun = time.Now().UnixMilli() + 1
			late.Set([]byte("evil"), []byte("1"))
			if err := s.change(old, &late, false, nil, nil); !errors.Is(err, ErrNotFound) {
				t.Fatalf("late update of the old ID = %v, want ErrNotFound", err)
			}
			// A logout that began before the rotation logs out the new ID.
			var logout Update
			logout.Begun, logout.Invalidate = slowBegan, true
			if err := s.change(old, &logout, false, nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := load(t, s, newID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("new ID after a racing logout: %v", err)
			}
		})
	}
}

// TestKeptChangeOutlivesTheHotTiersBound: a change kept in the hot tier
// while every server is down is the only copy of it, so it must outlive
// the hot tier's own bound (local_cache.ttl, or auto's 1s once other
// proxies are seen). It expired with that bound, and the write-back,
// finding no copy, counted it written: the change was lost.
func TestKeptChangeOutlivesTheHotTiersBound(t *testing.T) {
	for _, k := range storetest.Restartable {
		t.Run(k.Name, func(t *testing.T) {
			e := newStoreEnv(k.Start(t))
			bounded := e.uncached(t, Options{LocalSize: 1 << 20, LocalTTL: 3 * time.Second}) // at least 2s in freecache's whole seconds: room for the Stop below
			id := AppendNewID(nil)
			set(t, bounded, id, true, "a", "1")
			e.d.Stop()
			set(t, bounded, id, false, "a", "2")
			if bounded.Dirty() != 1 {
				t.Fatalf("Dirty = %d, want 1", bounded.Dirty())
			}
			time.Sleep(4500 * time.Millisecond) // past the bound, servers still down
			e.d.Restart()
			waitFor(t, "written back", func() bool { return bounded.Dirty() == 0 })
			mustLoad(t, e.store(t, Options{}), id, "a=2")
		})
	}
}

// TestStoreDownAndBack: while every server of the shared store is down,
// loads fail with ErrUnavailable, a change to a session the (trusted) hot
// tier holds is kept and written back once the servers return, and a
// store started while they are down connects once they are back.
func TestStoreDownAndBack(t *testing.T) {
	for _, k := range storetest.Restartable {
		t.Run(k.Name, func(t *testing.T) {
			e := newStoreEnv(k.Start(t))
			withLocal := e.uncached(t, Options{LocalSize: 1 << 20})
			noLocal := e.store(t, Options{})
			kept := AppendNewID(nil)
			set(t, withLocal, kept, true, "a", "1")
			remote := AppendNewID(nil)
			set(t, noLocal, remote, true, "b", "1")

			e.d.Stop()
			startedDown := e.store(t, Options{LocalSize: 1 << 20})
			for _, s := range []*Store{noLocal, withLocal, startedDown} {
				if _, err := load(t, s, remote); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Load of a session not held locally, every server down = %v, want ErrUnavailable", err)
				}
			}
			// Changes to a session the hot tier holds are kept...
			set(t, withLocal, kept, false, "a", "2")
			mustLoad(t, withLocal, kept, "a=2")
			if withLocal.Dirty() != 1 {
				t.Fatalf("Dirty = %d, want 1", withLocal.Dirty())
			}
			var u Update
			u.Set([]byte("x"), []byte("1"))
			if err := noLocal.change(remote, &u, false, nil, nil); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("change without hot tier, every server down = %v, want ErrUnavailable", err)
			}
			// ...and written back when the servers return (empty).
			e.d.Restart()
			waitFor(t, "written back", func() bool { return withLocal.Dirty() == 0 })
			mustLoad(t, e.store(t, Options{}), kept, "a=2")
			id := AppendNewID(nil)
			// A change succeeds into the hot tier while the servers are
			// still unreachable from this store; it is written through
			// once nothing is left dirty.
			waitFor(t, "the store started while the servers were down takes writes", func() bool {
				var u Update
				u.Set([]byte("v"), []byte("3"))
				return startedDown.change(id, &u, true, nil, nil) == nil && startedDown.Dirty() == 0
			})
			waitFor(t, "the write readable through another store", func() bool {
				var out Session
				_, err := noLocal.Load(id, &out)
				v, _ := out.Get("v")
				return err == nil && string(v) == "3"
			})
			mustLoad(t, noLocal, id, "v=3")
			if k.Redis && !startedDown.Coherent() {
				t.Fatal("a store started while redis was down is not coherent once it is back")
			}
		})
	}
}
