package memcached

import (
	"runtime"
	"strings"
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

// A write that saw n1 down, and whose hint for n1 came after n1's whole
// catch-up (its last take of the hints, then up), must still reach n1:
// that hint waited for a next catch-up while n1, up, served the version
// before the write. The test holds n1's hint lock while the write looks
// for it, and ends the catch-up meanwhile.
func TestHintRacingTheEndOfACatchUpReachesTheNode(t *testing.T) {
	c := startCluster(t)
	// The monitor sleeps through the test: the test plays its part.
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: c.nodes(), ProbeInterval: time.Hour, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	n1, n2 := m.nodes[0], m.nodes[1]
	id := sessionstore.AppendNewID(nil)
	encode := func(version uint64) []byte {
		s := sessionstore.Session{ID: id, Version: version, Touched: time.Now().Unix()}
		s.Expires = s.Touched + 3600
		return s.AppendEncode(nil)
	}
	if err := m.PutIfNewer(id, encode(1)); err != nil {
		t.Fatal(err)
	}
	key := m.appendKey(nil, id)

	n1.state.Store(int32(sessionstore.StateDown)) // as after a failed operation
	var p placement
	m.place(id, &p) // the write's nodes: n2 alone
	val := encode(2)
	if !m.writeIfNewer(n2, key, val) {
		t.Fatal("n2 did not take the write")
	}
	n1.handoff.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.hint(id, val, &p, nil)
	}()
	// Until the write waits for n1's hint lock, having seen n1 down.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(allStacks(), "(*handoff).add"); {
		if time.Now().After(deadline) {
			n1.handoff.mu.Unlock()
			t.Fatal("the write never came to n1's hint")
		}
		time.Sleep(time.Millisecond)
	}
	// Meanwhile n1 answered, caught up (nothing to take yet) and is up.
	n1.state.Store(int32(sessionstore.StateUp))
	n1.handoff.mu.Unlock()
	<-done

	call, err := n1.pipe.Get(key)
	if err != nil {
		t.Fatalf("n1 lacks the session: %v", err)
	}
	v, err := peekVersion(call.Value())
	call.Release()
	if err != nil || v != 2 {
		t.Fatalf("n1, up, holds version %d (%v), want 2; its hints: %d", v, err, n1.handoff.len())
	}
	if n := n1.handoff.len(); n != 0 {
		t.Fatalf("n1, up and written, has %d hints left for a catch-up to come", n)
	}
}

// allStacks is every goroutine's stack.
func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// A write that n1, catching up, failed (its connection broke; it is
// marked down) and that n1's return to catching up overtook, before the
// write looked for the nodes that missed it, must still reach n1: judged
// by its state then, n1 took the write, and the catch-up that brought it
// back replayed nothing for it.
func TestWriteFailedByAReturningNodeReachesIt(t *testing.T) {
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
	key := m.appendKey(nil, id)

	n1.state.Store(int32(sessionstore.StateCatchingUp))
	val := encode(2)
	err = m.eachWritable(id, val, func(n *node) bool {
		if n == n1 {
			// n1 fails the write and is marked down; a probe finds
			// it answering at once, and it catches up again.
			n1.state.Store(int32(sessionstore.StateDown))
			n1.state.Store(int32(sessionstore.StateCatchingUp))
			return false
		}
		return m.writeIfNewer(n, key, val)
	})
	if err != nil {
		t.Fatal(err)
	}
	m.catchUp(n1, false) // its hints replayed, it is up
	if n1.load() != sessionstore.StateUp {
		t.Fatalf("n1 is %v after its catch-up", n1.load())
	}
	call, err := n1.pipe.Get(key)
	if err != nil {
		t.Fatalf("n1 lacks the session: %v", err)
	}
	v, err := peekVersion(call.Value())
	call.Release()
	if err != nil || v != 2 {
		t.Fatalf("n1, up, holds version %d (%v), want 2: the write it failed", v, err)
	}
}
