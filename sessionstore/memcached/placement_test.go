package memcached

import (
	"fmt"
	"testing"

	"sessionproxy/sessionstore"
)

func TestPlacementIsConsistent(t *testing.T) {
	mk := func(n int) *Memcached {
		var nodes []sessionstore.Node
		for i := 0; i < n; i++ {
			nodes = append(nodes, sessionstore.Node{ID: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 1+i)})
		}
		return placementOnly(t, sessionstore.MemcachedOptions{Nodes: nodes, Replicas: 2})
	}
	s4, s5 := mk(4), mk(5)
	const keys = 10000
	moved, primaries := 0, map[string]int{}
	for i := 0; i < keys; i++ {
		id := sessionstore.AppendNewID(nil)
		var p4, p5 placement
		r4, r5 := s4.replicas(id, &p4), s5.replicas(id, &p5)
		if len(r4) != 2 || r4[0] == r4[1] {
			t.Fatal("replicas not on two distinct nodes")
		}
		primaries[r4[0].ID]++
		if r4[0].ID != r5[0].ID {
			moved++
			if r5[0].ID != "n4" {
				t.Fatalf("a key moved between old nodes %s -> %s", r4[0].ID, r5[0].ID)
			}
		}
	}
	// Adding a fifth node moves about 1/5 of the primaries.
	if moved < keys/5-keys/25 || moved > keys/5+keys/25 {
		t.Fatalf("adding a node moved %d of %d primaries, want about %d", moved, keys, keys/5)
	}
	for id, n := range primaries {
		if n < keys/4-keys/20 || n > keys/4+keys/20 {
			t.Errorf("node %s is primary for %d of %d keys", id, n, keys)
		}
	}
}

func TestPlacementFailoverOnlyWhenRegularMissing(t *testing.T) {
	s := placementOnly(t, sessionstore.MemcachedOptions{Replicas: 1, Nodes: []sessionstore.Node{
		{ID: "n1", Addr: "127.0.0.1:1"}, {ID: "n2", Addr: "127.0.0.1:2", Failover: true}}})
	for i := 0; i < 100; i++ {
		var p placement
		if r := s.replicas(sessionstore.AppendNewID(nil), &p); r[0].ID != "n1" {
			t.Fatalf("failover node used while n1 is up")
		}
	}
	s.nodes[0].state.Store(int32(sessionstore.StateDown))
	var p placement
	if r := s.replicas(sessionstore.AppendNewID(nil), &p); len(r) != 1 || r[0].ID != "n2" {
		t.Fatalf("failover node not used with n1 down: %v", r)
	}
}

// placementOnly is a store over nodes that do not exist, for placement
// alone: its monitors are stopped and every node is taken as up.
func placementOnly(t *testing.T, o sessionstore.MemcachedOptions) *Memcached {
	t.Helper()
	s, err := NewMemcached(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, n := range s.nodes {
		n.state.Store(int32(sessionstore.StateUp))
	}
	return s
}
