package memcached

import (
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

// TestHintReplayedWhileTheSourceIsDownIsKept: n1 misses a write (down),
// which n2 takes; then n2 fails too, and n1 answers again before n2 does.
// n1's catch-up cannot replay the hint (no readable replica holds the
// session then), and n1 goes up without it. Once n2 is back, n1 must
// still be given the session: dropped with the hint, it is on n2 alone
// for good, and lost with n2's next failure.
func TestHintReplayedWhileTheSourceIsDownIsKept(t *testing.T) {
	c := startCluster(t)
	// The monitors sleep through the test: the test plays their part.
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: c.nodes(), ProbeInterval: time.Hour, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	m.Reconciled() // the monitors' start-up copies done: they hold no listing
	n1, n2 := m.nodes[0], m.nodes[1]
	id := sessionstore.AppendNewID(nil)
	n1.state.Store(int32(sessionstore.StateDown)) // as after a failed operation
	if err := m.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	if n1.handoff.len() != 1 {
		t.Fatalf("n1 holds %d hints, want 1", n1.handoff.len())
	}
	n2.state.Store(int32(sessionstore.StateDown)) // n2 fails
	n1.state.Store(int32(sessionstore.StateCatchingUp))
	unread := m.catchUp(n1, false) // n1 answers first
	n2.state.Store(int32(sessionstore.StateCatchingUp))
	m.catchUp(n2, false) // n2 answers, not restarted: its hints (none) replayed
	if n1.load() != sessionstore.StateUp || n2.load() != sessionstore.StateUp {
		t.Fatalf("n1 %v, n2 %v after their catch-ups", n1.load(), n2.load())
	}
	// n1's monitor, n1 up: it copies from the nodes its catch-up could
	// not read.
	if left := m.reconcile(n1, unread, "copy to n1"); len(left) != 0 {
		t.Fatalf("the copy to n1 left %d nodes unread", len(left))
	}
	c1, err := n1.pipe.Get(m.appendKey(nil, id))
	c1.Release()
	if err != nil {
		t.Fatalf("n1 lacks the session it missed, now on n2 alone: %v (hints left: %d)", err, n1.handoff.len())
	}
}
