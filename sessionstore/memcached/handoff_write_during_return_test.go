package memcached

import (
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

// A write that chose its nodes while n1 was down, and finished after the
// monitor found n1 answering again (catching up), must not be lost to n1:
// once n1 is up and n2 is gone, n1 serves that write, not an older version.
func TestWriteRacingTheReturnIsHandedOff(t *testing.T) {
	c := startCluster(t)
	// The monitor sleeps through the test: the test plays its part.
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: c.nodes(), ProbeInterval: time.Hour, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	n1, n2 := m.nodes[0], m.nodes[1]
	id := sessionstore.AppendNewID(nil)
	encode := func(version uint64, v string) []byte {
		s := sessionstore.Session{ID: id, Version: version, Touched: time.Now().Unix()}
		s.Expires = s.Touched + 3600
		var u sessionstore.Update
		u.Set([]byte("v"), []byte(v))
		var next sessionstore.Session
		u.ApplyTo(&next, &s)
		next.Version, next.Touched, next.Expires = s.Version, s.Touched, s.Expires
		return next.AppendEncode(nil)
	}
	if err := m.PutIfNewer(id, encode(1, "old")); err != nil {
		t.Fatal(err)
	}

	n1.state.Store(int32(sessionstore.StateDown)) // as after a failed operation
	key := m.appendKey(nil, id)
	val2 := encode(2, "new")
	err = m.eachWritable(id, val2, func(n *node) bool {
		// The write is on its way to n2 when n1 answers a probe again.
		n1.state.Store(int32(sessionstore.StateCatchingUp))
		return m.writeIfNewer(n, key, val2)
	})
	if err != nil {
		t.Fatal(err)
	}
	m.catchUp(n1, false) // what the monitor does next: replay the hints
	if n1.load() != sessionstore.StateUp {
		t.Fatalf("n1 is %v after its catch-up", n1.load())
	}
	n2.state.Store(int32(sessionstore.StateDown)) // n2 is lost
	val, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := peek(val)
	if err != nil || mt.version != 2 {
		t.Fatalf("after n2's loss, n1 serves version %d (%v), want 2: the write it missed", mt.version, err)
	}
}
