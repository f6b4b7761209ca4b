package memcached

import (
	"runtime"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"

	"sessionproxy/sessionstore"
)

// TestRequestAfterCloseLeavesNoConnection: a request that outlives its
// store's Close (one that ran past a reload's grace) still reads and
// writes its session, on a connection of its own that is closed with its
// last answer; nothing stays open on the node.
func TestRequestAfterCloseLeavesNoConnection(t *testing.T) {
	srv := memcachedtest.Start(t)
	before := runtime.NumGoroutine()
	m := idleMemcached(t, 1, sessionstore.Node{ID: "a", Addr: srv.Addr})
	id := sessionstore.AppendNewID(nil)
	if err := m.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	m.Close()
	for v := uint64(2); v < 5; v++ {
		if err := m.Put(id, encodedSession(id, v)); err != nil {
			t.Fatalf("a write after Close: %v", err)
		}
		got, err := m.Get(id)
		if err != nil {
			t.Fatalf("a read after Close: %v", err)
		}
		if have, _ := peekVersion(got); have != v {
			t.Fatalf("read version %d after Close, want %d", have, v)
		}
	}
	// Only this test's stats connection is left, and no reader.
	testutil.WaitFor(t, 5*time.Second, "no connection left open after Close", func() bool {
		return memcachedtest.Stat(t, srv.Addr, "curr_connections") <= 1 && runtime.NumGoroutine() <= before
	})
}
