package memcached

import (
	"errors"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/sessionstore"
)

// mergeFunc is a sessionstore.Merger from a function.
type mergeFunc func(cur []byte) ([]byte, error)

func (f mergeFunc) Merge(cur []byte) ([]byte, error) { return f(cur) }

// openNodes is a Memcached over srv, named n1, n2…, closed when the test
// ends.
func openNodes(t *testing.T, srv ...*memcachedtest.Server) *Memcached {
	t.Helper()
	var nodes []sessionstore.Node
	for i, s := range srv {
		nodes = append(nodes, sessionstore.Node{ID: "n" + string(rune('1'+i)), Addr: s.Addr})
	}
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: nodes, ProbeInterval: 20 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// withAnotherProxy opens a second Memcached over srv, as another proxy
// on the same nodes, and waits until m sees its presence mark: a miss is
// taken for unavailable only when other proxies may have written what
// this one's view does not follow.
func withAnotherProxy(t *testing.T, m *Memcached, srv ...*memcachedtest.Server) {
	t.Helper()
	openNodes(t, srv...)
	for end := time.Now().Add(10 * time.Second); m.peers.Others() <= 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the other proxy's mark not seen")
		}
	}
}

// waitDown reads unknown IDs until the nodes of m at idx are counted down
// (traffic takes nodes down).
func waitDown(t *testing.T, m *Memcached, idx ...int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m.Get(sessionstore.AppendNewID(nil))
		down := 0
		for _, i := range idx {
			if !m.nodes[i].readable() {
				down++
			}
		}
		if down == len(idx) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("nodes %v not counted down", idx)
		}
	}
}

// TestStandInMissIsNotNotFound: three nodes, replicas 2. A session written
// while its two owners are up is on them alone; with both away, the third
// node (the stand-in a read then goes to) lacks it, and its miss must not
// be taken for "no such session": the session is unavailable (503 under
// store_down: reject), never replaced by a fresh one. It was reported not
// found, and the fault harness's clients got fresh sessions (logged out)
// from a proxy whose loaded machine's timeouts had put both owners down in
// its view (docs/guarantees.md).
func TestStandInMissIsNotNotFound(t *testing.T) {
	srv := []*memcachedtest.Server{memcachedtest.Start(t), memcachedtest.Start(t), memcachedtest.Start(t)}
	m := openNodes(t, srv...)
	withAnotherProxy(t, m, srv...)
	id := sessionstore.AppendNewID(nil)
	if err := m.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	var p placement
	m.place(id, &p)
	var owners []int
	for _, n := range p.owners(m.opts.Replicas) {
		for i, nd := range m.nodes {
			if nd == n {
				srv[i].Stop()
				owners = append(owners, i)
			}
		}
	}
	waitDown(t, m, owners...)
	if _, err := m.Get(id); !errors.Is(err, sessionstore.ErrUnavailable) {
		t.Errorf("Get with both owners down, the stand-in lacking it = %v, want ErrUnavailable", err)
	}
	// A new session is still stored, on the stand-in.
	id2 := sessionstore.AppendNewID(nil)
	if err := m.Put(id2, encodedSession(id2, 1)); err != nil {
		t.Errorf("a new session with both owners down = %v, want it stored on the stand-in", err)
	}
}

// TestMissWithAnOwnerDownIsUnavailable: two nodes, replicas 2. A session
// another proxy wrote to n1 alone (it counted n2 down) is missed by a
// proxy that counts n1 down and reads n2: unavailable (503), never "not
// found" (a fresh session: the user logged out). The fault harness under
// load: a session rotated through p1 and read five times was "fresh"
// through p2 (docs/guarantees.md). Only for outageGrace after the owner
// went away, though: by then every proxy counts a node that is really
// gone down and writes to the other owner, whose miss is a miss again; a
// stale cookie is not refused for as long as a dead node stays dead.
func TestMissWithAnOwnerDownIsUnavailable(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	m := openNodes(t, n1, n2)
	withAnotherProxy(t, m, n1, n2)
	m.outageGrace = time.Second
	id := sessionstore.AppendNewID(nil)
	val := encodedSession(id, 2)
	if err := memcachedtest.Set(n1.Addr, sessionstore.DefaultKeyPrefix+string(id), val, versionFlags(val)); err != nil {
		t.Fatal(err)
	}
	n1.Stop()
	waitDown(t, m, 0)
	if _, err := m.Get(id); !errors.Is(err, sessionstore.ErrUnavailable) {
		t.Errorf("Get of a session n2 lacks, n1 just down = %v, want ErrUnavailable", err)
	}
	time.Sleep(m.outageGrace)
	if _, err := m.Get(sessionstore.AppendNewID(nil)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Get of an unknown ID, n1 down for longer than outageGrace = %v, want ErrNotFound", err)
	}
	// With both owners up, a miss is a miss.
	n1.Restart()
	for end := time.Now().Add(10 * time.Second); !m.nodes[0].readable(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("n1 not back")
		}
	}
	if _, err := m.Get(sessionstore.AppendNewID(nil)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Get of an unknown ID, every owner up = %v, want ErrNotFound", err)
	}
}

// TestMissAloneIsNotFound: a proxy alone on the nodes takes a miss on the
// owners it reads for "not found", owner away or not: every write went
// through it, and an owner that missed some serves reads only once its
// hints are replayed. A lone proxy on a machine whose load put a node
// down for a moment answered a rotation 503 (the servlet adapter's test in
// a clean-clone CI run), where a fresh session is what it always gave.
func TestMissAloneIsNotFound(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	m := openNodes(t, n1, n2)
	n1.Stop()
	waitDown(t, m, 0)
	if _, err := m.Get(sessionstore.AppendNewID(nil)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Get of an unknown ID, alone, n1 just down = %v, want ErrNotFound", err)
	}
}
