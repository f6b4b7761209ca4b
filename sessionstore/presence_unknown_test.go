package sessionstore

import (
	"errors"
	"testing"

	"sessionproxy/internal/memcachedtest"
)

// TestPresenceUnknownAtStartIsNotAlone: a proxy whose nodes do not answer
// when it starts cannot tell whether other proxies use them, and must not
// take itself for alone: with ttl auto, its hot tier is bounded (1s) and a
// change no replica takes is not kept as done, until a node answers and
// says. Taken for alone, a proxy that started on a loaded machine (every
// first answer timed out) trusted its hot tier for good, served a session
// its ID had been rotated away from seconds after the rotation through
// another proxy, and kept changes the others could not see (the fault
// harness, seed 1, 2 nodes; docs/guarantees.md).
func TestPresenceUnknownAtStartIsNotAlone(t *testing.T) {
	srv := memcachedtest.Start(t)
	srv.Freeze()
	t.Cleanup(srv.Thaw) // resuming a running process does nothing
	s := newStore(t, Options{LocalSize: 1 << 20, LocalTTL: AutoTTL,
		Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: srv.Addr}}}})
	if !s.Crowded() {
		t.Fatal("started with no node answering: the hot tier is trusted as if alone")
	}
	var u Update
	u.Set([]byte("a"), []byte("1"))
	if err := s.change(AppendNewID(nil), &u, true, nil, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a new session no node took, others unknown = %v, want ErrUnavailable", err)
	}
	if n := s.Dirty(); n != 0 {
		t.Errorf("%d changes kept as done while others are unknown", n)
	}
	srv.Thaw()
	waitFor(t, "alone once the node answers with no other mark", func() bool { return !s.Crowded() })
}
