package sessionstore

import (
	"runtime"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
)

// TestMetaPipeCloseDuringAWriteEndsTheReader: a pipe closed (the store
// closed by a reload, the node marked down) while a caller is writing
// keeps its link until that write ends; the reader of that link must
// still end, not wait forever on a channel nobody closes when no call
// comes after (a closed store gets none).
func TestMetaPipeCloseDuringAWriteEndsTheReader(t *testing.T) {
	srv := memcachedtest.Start(t)
	before := runtime.NumGoroutine()
	p := newMetaPipe(srv.Addr, 3*time.Second)
	if err := p.store(opSet, []byte("k"), []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	freeze(t, srv)
	calls := startGets(p, "k", maxInflight+1)
	blocked := newCall(opGet, nil, 0, 0)
	done := make(chan struct{})
	go func() {
		p.start(blocked, []byte("k")) // waits for room in the channel, writing
		close(done)
	}()
	mc := &p.conns[0]
	testutil.WaitFor(t, 2*time.Second, "the writer waiting on the full channel", func() bool {
		mc.mu.Lock()
		defer mc.mu.Unlock()
		return mc.writing && len(mc.queue) == 0
	})
	p.close()
	<-done
	for _, c := range append(calls, blocked) {
		c.wait()
		c.release()
	}
	srv.Thaw()
	testutil.WaitFor(t, 5*time.Second, "the closed pipe's reader ended", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestRequestAfterCloseLeavesNoConnection: a request that outlives its
// store's Close (one that ran past a reload's grace) still reads and
// writes its session, on a connection of its own that is closed with its
// last answer; nothing stays open on the node.
func TestRequestAfterCloseLeavesNoConnection(t *testing.T) {
	srv := memcachedtest.Start(t)
	before := runtime.NumGoroutine()
	m := idleMemcached(t, 1, Node{ID: "a", Addr: srv.Addr})
	id := AppendNewID(nil)
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
		if have, _, _ := peekVersion(got); have != v {
			t.Fatalf("read version %d after Close, want %d", have, v)
		}
	}
	// Only this test's stats connection is left, and no reader.
	testutil.WaitFor(t, 5*time.Second, "no connection left open after Close", func() bool {
		return memcachedtest.Stat(t, srv.Addr, "curr_connections") <= 1 && runtime.NumGoroutine() <= before
	})
}
