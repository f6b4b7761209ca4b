package sessionstore

import (
	"errors"
	"testing"

	"sessionproxy/internal/memcachedtest"
)

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
	o := Options{Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: srv[0].Addr}, {ID: "n2", Addr: srv[1].Addr}, {ID: "n3", Addr: srv[2].Addr}}}}
	s := newStore(t, o) // no hot tier: every read goes to the nodes
	m := s.shared.(*Memcached)
	id := AppendNewID(nil)
	set(t, s, id, true, "a", "1")
	var p placement
	m.place(id, &p)
	for _, n := range p.owners(m.opts.Replicas) {
		for i, nd := range m.nodes {
			if nd == n {
				srv[i].Stop()
			}
		}
	}
	waitFor(t, "both owners down", func() bool {
		var out Session
		s.Load(id, &out) // traffic takes nodes down
		down := 0
		for _, n := range p.owners(m.opts.Replicas) {
			if !n.readable() {
				down++
			}
		}
		return down == 2
	})
	var out Session
	if _, err := s.Load(id, &out); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Load with both owners down, the stand-in lacking it = %v, want ErrUnavailable", err)
	}
	var u Update
	u.Set([]byte("a"), []byte("2"))
	if err := s.change(id, &u, false, nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a change with both owners down, the stand-in lacking it = %v, want ErrUnavailable", err)
	}
	// A new session is still created on the stand-in.
	set(t, s, AppendNewID(nil), true, "b", "1")
}

// TestMissWithAnOwnerDownIsUnavailable: two nodes, replicas 2. A session
// another proxy wrote to n1 alone (it counted n2 down) is missed by a
// proxy that counts n1 down and reads n2: unavailable (503), never "not
// found" (a fresh session: the user logged out). The fault harness under
// load: a session rotated through p1 and read five times was "fresh"
// through p2 (docs/guarantees.md).
func TestMissWithAnOwnerDownIsUnavailable(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}}})
	id := AppendNewID(nil)
	val := encodedSession(id, 2)
	if err := memcachedtest.Set(n1.Addr, DefaultKeyPrefix+string(id), val, versionFlags(val)); err != nil {
		t.Fatal(err)
	}
	n1.Stop()
	m := s.shared.(*Memcached)
	waitFor(t, "n1 down", func() bool {
		var out Session
		s.Load(AppendNewID(nil), &out) // traffic takes nodes down
		return !m.nodes[0].readable()
	})
	var out Session
	if _, err := s.Load(id, &out); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Load of a session n2 lacks, n1 down = %v, want ErrUnavailable", err)
	}
	// With both owners up, a miss is a miss.
	n1.Restart()
	waitFor(t, "n1 back", func() bool { return m.nodes[0].readable() })
	if _, err := s.Load(AppendNewID(nil), &out); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of an unknown ID, every owner up = %v, want ErrNotFound", err)
	}
}
