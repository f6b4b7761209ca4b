package memcached

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/sessionstore"
)

// openStill is a Memcached over srv, named n1, n2…, whose monitors and
// presence rounds do not run again within a test (the first presence
// round, at start, does): the node states a test sets stay as set, as a
// proxy's view stays between two probes. Closed when the test ends.
func openStill(t *testing.T, srv ...*memcachedtest.Server) *Memcached {
	t.Helper()
	var nodes []sessionstore.Node
	for i, s := range srv {
		nodes = append(nodes, sessionstore.Node{ID: "n" + string(rune('1'+i)), Addr: s.Addr})
	}
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: nodes, ProbeInterval: time.Hour, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	// No start-up copy between the nodes runs beside the test: it could
	// bring n2 what a wrote to n1 alone.
	m.Reconciled()
	return m
}

// divergingViews is two proxies over two nodes (replicas 2) holding id at
// version 1 on both: a, which counts n2 down, and b, which counts n2 up
// and n1 catching up (its probe found n1 answering again after b's own
// timeouts; its catch-up is not over), so that b reads n2 alone.
func divergingViews(t *testing.T) (a, b *Memcached, id []byte, srv [2]*memcachedtest.Server) {
	t.Helper()
	srv = [2]*memcachedtest.Server{memcachedtest.Start(t), memcachedtest.Start(t)}
	a = openStill(t, srv[:]...)
	b = openStill(t, srv[:]...) // sees a's mark in its first presence round
	if b.peers.Others() <= 0 {
		t.Fatal("b does not see a's presence mark")
	}
	id = sessionstore.AppendNewID(nil)
	if err := a.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	// a's view: n2 down (set, not through check, whose probe would find
	// it answering and end the view at once).
	a.nodes[1].state.Store(int32(sessionstore.StateDown))
	a.nodes[1].awayAt.Store(time.Now().UnixNano())
	b.nodes[0].state.Store(int32(sessionstore.StateCatchingUp))
	b.nodes[0].awayAt.Store(time.Now().UnixNano())
	return a, b, id, srv
}

// TestDivergingViewsReadTheNewest: a proxy that counts n2 down writes
// version 2 to n1 alone (a hint for n2, in that proxy only); another proxy
// that counts n2 up and n1 catching up read n2 alone and served version 1,
// older than a version acknowledged before (the fault harness under load:
// "p0 write.effect(b=v171) ... p2 read -> {b=v139}", docs/guarantees.md).
// A cold read with other proxies on the nodes asks the owners that are
// catching up too, in the same round trip, and the newest copy wins.
func TestDivergingViewsReadTheNewest(t *testing.T) {
	a, b, id, srv := divergingViews(t)
	if err := a.Merge(id, mergeFunc(func(cur []byte) ([]byte, error) { return encodedSession(id, 2), nil })); err != nil {
		t.Fatal(err)
	}
	if _, err := memcachedtest.Get(srv[0].Addr, sessionstore.DefaultKeyPrefix+string(id)); err != nil {
		t.Fatalf("n1 lacks a's write: %v", err)
	}
	val, err := b.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := peek(val); mt.version != 2 {
		t.Errorf("b read version %d, want 2 (a wrote it to n1 while b read n2 alone)", mt.version)
	}
	// The stale owner is repaired by the read.
	held, err := memcachedtest.Get(srv[1].Addr, sessionstore.DefaultKeyPrefix+string(id))
	if err != nil {
		t.Fatalf("n2 after b's read: %v", err)
	}
	if mt, _ := peek(held.Value); mt.version != 2 {
		t.Errorf("n2 holds version %d after b's read, want 2", mt.version)
	}
}

// TestDivergingViewsChangeTheNewest: as TestDivergingViewsReadTheNewest,
// for a change (an attribute write, a rotation): built on n2's older copy,
// it lost a's write ("p2 rotate.effect -> found {c=v120}", c=v158 lost).
func TestDivergingViewsChangeTheNewest(t *testing.T) {
	a, b, id, _ := divergingViews(t)
	if err := a.Merge(id, mergeFunc(func(cur []byte) ([]byte, error) { return encodedSession(id, 2), nil })); err != nil {
		t.Fatal(err)
	}
	var built uint64
	err := b.Merge(id, mergeFunc(func(cur []byte) ([]byte, error) {
		mt, err := peek(cur)
		if err != nil {
			return nil, err
		}
		built = mt.version
		return encodedSession(id, mt.version+1), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if built != 2 {
		t.Errorf("b's change built on version %d, want 2 (a's write, on n1 only)", built)
	}
	val, err := a.Get(id)
	if mt, _ := peek(val); err != nil || mt.version != 3 {
		t.Errorf("a reads version %d (%v) after b's change, want 3", mt.version, err)
	}
}

// TestDivergingViewsMissIsNotNotFound: a session a proxy created while it
// counted n2 down is on n1 alone; another proxy that counts n1 catching up
// finds it there rather than answering "not found" (a fresh session).
func TestDivergingViewsMissIsNotNotFound(t *testing.T) {
	a, b, _, _ := divergingViews(t)
	id := sessionstore.AppendNewID(nil)
	if err := a.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(id); err != nil {
		t.Errorf("b's read of a session a created on n1 alone = %v, want it found", err)
	}
}

// BenchmarkMemcachedViewOwnerCatchingUp is BenchmarkMemcachedView while
// one of the two owners catches up in this proxy's view and another
// proxy is on the nodes: every cold read also asks that owner
// (lateOwners), three gets in flight instead of two, no more round
// trips, and nothing allocated (make allocs).
func BenchmarkMemcachedViewOwnerCatchingUp(b *testing.B) {
	n1, n2 := memcachedtest.Start(b), memcachedtest.Start(b)
	// No probe within the run: it would end the catch-up.
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}},
		Timeout: memcachedtest.BenchTimeout, ProbeInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	ids, _ := benchSessions(b, m, 1000, 4096)
	m.nodes[0].state.Store(int32(sessionstore.StateCatchingUp))
	m.peers.Set(1)
	var next atomic.Uint32
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	defer memcachedtest.ReportRusage(b, n1, n2)()
	b.RunParallel(func(pb *testing.PB) {
		var s sessionstore.Session
		for pb.Next() {
			if err := m.View(ids[next.Add(1)%uint32(len(ids))], decodeInto{&s}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestTrafficDownIsProbedAtOnce: a node that traffic takes down (a timeout
// on a loaded machine) but that answers is probed at once and catches up,
// not left down until the monitor's next tick: while it is down, no read
// asks it, and a write another proxy made to it alone goes unseen
// (lateOwners, docs/guarantees.md). The probe interval here is an hour.
func TestTrafficDownIsProbedAtOnce(t *testing.T) {
	m := openStill(t, memcachedtest.Start(t), memcachedtest.Start(t))
	if !m.check(m.nodes[0], errors.New("test: a timeout on a loaded machine")) {
		t.Fatal("n1 not counted down")
	}
	for end := time.Now().Add(10 * time.Second); m.nodes[0].load() == sessionstore.StateDown; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("n1, answering, still counted down 10 s after traffic took it down")
		}
	}
	// A node that does not answer stays down.
	srv := memcachedtest.Start(t)
	m2 := openStill(t, srv, memcachedtest.Start(t))
	srv.Stop()
	m2.check(m2.nodes[0], errors.New("test: refused"))
	time.Sleep(200 * time.Millisecond)
	if st := m2.nodes[0].load(); st != sessionstore.StateDown {
		t.Errorf("a stopped node is %v after its probe, want down", st)
	}
}
