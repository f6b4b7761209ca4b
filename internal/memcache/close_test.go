package memcache

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
	p := New(srv.Addr, 3*time.Second, 0)
	if err := p.Store(OpSet, []byte("k"), []byte("v"), 0, 0, 60); err != nil {
		t.Fatal(err)
	}
	freeze(t, srv)
	calls := startGets(p, "k", maxInflight+1)
	blocked := NewCall(OpGet, nil, 0, 0, 0)
	done := make(chan struct{})
	go func() {
		p.Start(blocked, []byte("k")) // waits for room in the channel, writing
		close(done)
	}()
	mc := &p.conns[0]
	testutil.WaitFor(t, 2*time.Second, "the writer waiting on the full channel", func() bool {
		mc.mu.Lock()
		defer mc.mu.Unlock()
		return mc.writing && len(mc.queue) == 0
	})
	p.Close()
	<-done
	for _, c := range append(calls, blocked) {
		c.Wait()
		c.Release()
	}
	srv.Thaw()
	testutil.WaitFor(t, 5*time.Second, "the closed pipe's reader ended", func() bool {
		return runtime.NumGoroutine() <= before
	})
}
