package memcached

import (
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

// A Merge that chose its nodes while n1 was catching up (written, not
// read), and whose catch-up ended while the write was in flight, must
// still reach n1: it is up now and serves reads, and no hint stands for
// the write. Judged by n1's health after the write, n1 was neither
// written nor hinted, and held the version before it for good
// (TestFailoverRoundTripUnderLoad, about one run in five under load: the
// last write of a few sessions, those in flight as n1 came up).
func TestMergeRacingTheEndOfACatchUpReachesTheNode(t *testing.T) {
	c := startCluster(t)
	// The monitor sleeps through the test: the test plays its part.
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: c.nodes(), ProbeInterval: time.Hour, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	n1 := m.nodes[0]
	id := sessionstore.AppendNewID(nil)
	encode := func(version uint64) []byte {
		s := sessionstore.Session{ID: id, Version: version, Touched: time.Now().Unix()}
		s.Expires = s.Touched + 3600
		return s.AppendEncode(nil)
	}
	if err := m.PutIfNewer(id, encode(1)); err != nil {
		t.Fatal(err)
	}

	n1.state.Store(int32(sessionstore.StateCatchingUp)) // it answers again, its catch-up under way
	err = m.Merge(id, mergeFunc(func(cur []byte) ([]byte, error) {
		// Between the read and the writes, the catch-up ends: what
		// catchUp does last.
		if !n1.state.CompareAndSwap(int32(sessionstore.StateCatchingUp), int32(sessionstore.StateUp)) {
			t.Error("n1 was not catching up during the merge")
		}
		v, err := peekVersion(cur)
		if err != nil {
			return nil, err
		}
		return encode(v + 1), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if n := n1.handoff.len(); n != 0 {
		t.Fatalf("n1 has %d hints; none can be replayed to a node that is up", n)
	}
	call, err := n1.pipe.Get(m.appendKey(nil, id))
	if err != nil {
		t.Fatalf("n1 lacks the session: %v", err)
	}
	v, err := peekVersion(call.Value())
	call.Release()
	if err != nil || v != 2 {
		t.Fatalf("n1 holds version %d (%v) after the merge, want 2: the write it missed", v, err)
	}
}
