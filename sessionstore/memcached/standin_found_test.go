package memcached

import (
	"testing"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/sessionstore"
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
	m := openNodes(t, srv...)
	id := sessionstore.AppendNewID(nil)
	var p placement
	m.place(id, &p)
	standIn := p.all[2]
	val := encodedSession(id, 3)
	for i, nd := range m.nodes {
		if nd == standIn {
			if err := memcachedtest.Set(srv[i].Addr, sessionstore.DefaultKeyPrefix+string(id), val, versionFlags(val)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := m.Get(id); err != nil {
		t.Fatalf("Load of a session on a stand-in only = %v, want it found", err)
	}
	for i, nd := range m.nodes {
		if p.holds(nd, m.opts.Replicas) {
			if _, err := memcachedtest.Get(srv[i].Addr, sessionstore.DefaultKeyPrefix+string(id)); err != nil {
				t.Errorf("owner %s not given the stand-in's copy: %v", nd.ID, err)
			}
		}
	}
	// A change of a session held by a stand-in only builds on it.
	id2 := sessionstore.AppendNewID(nil)
	m.place(id2, &p)
	val2 := encodedSession(id2, 3)
	for i, nd := range m.nodes {
		if nd == p.all[2] {
			if err := memcachedtest.Set(srv[i].Addr, sessionstore.DefaultKeyPrefix+string(id2), val2, versionFlags(val2)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var held []byte
	err := m.Merge(id2, mergeFunc(func(cur []byte) ([]byte, error) {
		held = cur
		return encodedSession(id2, 4), nil
	}))
	if err != nil || held == nil {
		t.Errorf("a change of a session on a stand-in only = %v (found it: %v), want it built on the stand-in's copy", err, held != nil)
	}
}
