package memcache

import (
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestMetaPipeBacklogOverInflightBound: after a stall of the node (here a
// frozen memcached, in production a slow node or a network hiccup) with
// maxInflight commands unanswered, the commands queued meanwhile are more
// than the in-flight channel holds. Once the node answers again they must
// all be answered: the writer must not wait for room in the channel with
// commands the reader waits for still unwritten, which holds the link
// until the read deadline fails every call on it (and takes the node down).
func TestMetaPipeBacklogOverInflightBound(t *testing.T) {
	srv := memcachedtest.Start(t)
	const timeout = 3 * time.Second
	p := New(srv.Addr, timeout, 0)
	defer p.Close()
	if err := p.Store(OpSet, []byte("k"), []byte("v"), 0, 0, 60); err != nil {
		t.Fatal(err)
	}
	mc := &p.conns[0]
	freeze(t, srv)
	// Fill the channel: the reader holds one call, the channel the rest.
	calls := startGets(p, "k", maxInflight+1)
	// One more blocks its writer on the full channel...
	blocked := NewCall(OpGet, nil, 0, 0, 0)
	go p.Start(blocked, []byte("k"))
	deadline := time.Now().Add(timeout / 2)
	for {
		mc.mu.Lock()
		w := mc.writing && len(mc.queue) == 0
		mc.mu.Unlock()
		if w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the last call")
		}
		time.Sleep(time.Millisecond)
	}
	// ... and the callers after it queue behind the writer in progress.
	calls = append(calls, startGets(p, "k", maxInflight+1000)...)
	calls = append(calls, blocked)
	srv.Thaw()
	failed := 0
	var first error
	for _, c := range calls {
		if err := c.Wait(); err != nil || string(c.val) != "v" {
			if failed == 0 {
				first = err
			}
			failed++
		}
		c.Release()
	}
	if failed > 0 {
		t.Fatalf("%d of %d gets failed after the node answered again (first: %v)", failed, len(calls), first)
	}
}
