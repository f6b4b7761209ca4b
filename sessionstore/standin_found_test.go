package sessionstore

import (
	"testing"

	"sessionproxy/internal/memcachedtest"
)

// TestSessionOnAStandInOnlyIsFound: three nodes, replicas 2, all up. A
// session held only by the third node (a stand-in), as when another proxy
// created or changed it while it counted both owners down and its hints
// have not reached them yet, is found, changed, and copied to its owners.
// Read from the owners alone it was "not found", and the client got a
// fresh session through this proxy moments after another had created or
// rotated it (the fault harness, seed 1, 3 nodes, under load;
// docs/guarantees.md).
func TestSessionOnAStandInOnlyIsFound(t *testing.T) {
	srv := []*memcachedtest.Server{memcachedtest.Start(t), memcachedtest.Start(t), memcachedtest.Start(t)}
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: srv[0].Addr}, {ID: "n2", Addr: srv[1].Addr}, {ID: "n3", Addr: srv[2].Addr}}}})
	m := s.shared.(*Memcached)
	id := AppendNewID(nil)
	var p placement
	m.place(id, &p)
	standIn := p.all[2]
	val := encodedSession(id, 3)
	for i, nd := range m.nodes {
		if nd == standIn {
			if err := memcachedtest.Set(srv[i].Addr, DefaultKeyPrefix+string(id), val, versionFlags(val)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out Session
	if _, err := s.Load(id, &out); err != nil {
		t.Fatalf("Load of a session on a stand-in only = %v, want it found", err)
	}
	for i, nd := range m.nodes {
		if p.holds(nd, m.opts.Replicas) {
			if _, err := memcachedtest.Get(srv[i].Addr, DefaultKeyPrefix+string(id)); err != nil {
				t.Errorf("owner %s not given the stand-in's copy: %v", nd.ID, err)
			}
		}
	}
	// A change of a session held by a stand-in only builds on it.
	id2 := AppendNewID(nil)
	m.place(id2, &p)
	val2 := encodedSession(id2, 3)
	for i, nd := range m.nodes {
		if nd == p.all[2] {
			if err := memcachedtest.Set(srv[i].Addr, DefaultKeyPrefix+string(id2), val2, versionFlags(val2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	set(t, s, id2, false, "a", "1")
}
