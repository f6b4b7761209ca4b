package memcache

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestMetaPipeStartAllOverInflightBound: batches of flag reads larger
// than the in-flight bound, from two copies at once, interleaved with
// single gets and sets from other callers on the same connection, are all
// answered, each with its own key's answer: no batch waits on its own
// unwritten commands, and no end offset sends a command's bytes before
// the reader knows its call.
func TestMetaPipeStartAllOverInflightBound(t *testing.T) {
	srv := memcachedtest.Start(t)
	const keys = 3*maxInflight + 123
	bkeys := flaggedKeys(t, srv.Addr, keys)
	p := New(srv.Addr, 5*time.Second, 0)
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 2 {
		wg.Go(func() {
			for range 3 {
				calls := flagCalls(keys)
				p.StartAll(calls, bkeys)
				var bad error
				for i, c := range calls {
					if err := c.Wait(); (err != nil || c.flag != uint32(i+1)) && bad == nil {
						bad = fmt.Errorf("flags of %s: %d %v, want %d", bkeys[i], c.flag, err, i+1)
					}
				}
				releaseCalls(calls)
				if bad != nil {
					errs <- bad
					return
				}
			}
		})
	}
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				key := []byte(fmt.Sprintf("own%d-%d", g, i%50))
				val := []byte(fmt.Sprintf("v%d", i))
				if err := p.Store(OpSet, key, val, 0, 0, 60); err != nil {
					errs <- err
					return
				}
				got, _, err := getCopy(p, string(key))
				if err != nil || string(got) != string(val) {
					errs <- fmt.Errorf("get %s: %q %v, want %q", key, got, err, val)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMetaPipeStartAllDuringAStall: a copy's batch over the in-flight
// bound queued while the node stalls, and the requests queued behind it,
// are all answered once the node answers again (within the timeout).
func TestMetaPipeStartAllDuringAStall(t *testing.T) {
	srv := memcachedtest.Start(t)
	const keys = 2*maxInflight + 7
	bkeys := flaggedKeys(t, srv.Addr, keys)
	const timeout = 3 * time.Second
	p := New(srv.Addr, timeout, 0)
	defer p.Close()
	if err := p.Store(OpSet, []byte("k"), []byte("v"), 0, 0, 60); err != nil {
		t.Fatal(err)
	}
	freeze(t, srv)
	calls := flagCalls(keys)
	started := make(chan struct{})
	go func() {
		p.StartAll(calls, bkeys)
		close(started)
	}()
	time.Sleep(200 * time.Millisecond)
	var gets []*Call
	for range 100 {
		c := NewCall(OpGet, nil, 0, 0, 0)
		p.Start(c, []byte("k"))
		gets = append(gets, c)
	}
	srv.Thaw()
	<-started
	failed := 0
	for i, c := range calls {
		if err := c.Wait(); err != nil || c.flag != uint32(i+1) {
			failed++
		}
	}
	for _, c := range gets {
		if err := c.Wait(); err != nil || string(c.val) != "v" {
			failed++
		}
	}
	releaseCalls(calls)
	releaseCalls(gets)
	if failed > 0 {
		t.Fatalf("%d of %d calls failed or got another key's answer", failed, len(calls)+len(gets))
	}
}
