package memcache

import (
	"errors"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestJoinWaitsForTheWholeGroup: a write to two replicas joined in one
// group wakes its waiter once, after the last answer: with one replica
// frozen, the group's first call (answered at once by the live replica)
// does not return before the frozen one's timeout, and then each call
// holds its own answer: the live set stored, the frozen one failed.
func TestJoinWaitsForTheWholeGroup(t *testing.T) {
	live, frozen := memcachedtest.Start(t), memcachedtest.Start(t)
	const timeout = 300 * time.Millisecond
	pl, pf := New(live.Addr, timeout, 0), New(frozen.Addr, timeout, 0)
	defer pl.Close()
	defer pf.Close()
	if err := pf.Store(OpSet, []byte("k"), []byte("old"), 0, 0, 60); err != nil {
		t.Fatal(err) // dialled before the freeze
	}
	freeze(t, frozen)
	calls := []*Call{NewCall(OpSet, []byte("v"), 0, 0, 60), NewCall(OpSet, []byte("v"), 0, 0, 60)}
	Join(calls)
	start := time.Now()
	pl.Start(calls[0], []byte("k"))
	pf.Start(calls[1], []byte("k"))
	err0 := calls[0].Wait()
	if took := time.Since(start); took < timeout*9/10 {
		t.Fatalf("the group's first call returned after %v, before the frozen replica's timeout (%v)", took, timeout)
	}
	WaitAll(calls)
	if err0 != nil {
		t.Fatalf("live replica: %v", err0)
	}
	if err := calls[1].Wait(); err == nil || IsAnswer(err) {
		t.Fatalf("frozen replica: %v, want a failure", err)
	}
	releaseCalls(calls)
	if val, _ := textGet(t, live.Addr, "k"); string(val) != "v" {
		t.Fatalf("live replica holds %q", val)
	}
}

// TestJoinGetsAndMisses: a cold read's gets on two replicas, joined: one
// wake-up, each call its own answer (a hit on one, a miss on the other),
// and the pooled calls work alone again after release.
func TestJoinGetsAndMisses(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	pa, pb := New(a.Addr, time.Second, 0), New(b.Addr, time.Second, 0)
	defer pa.Close()
	defer pb.Close()
	if err := pa.Store(OpSet, []byte("k"), []byte("held"), 0, 0, 60); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		calls := []*Call{NewCall(OpGet, nil, 0, 0, 0), NewCall(OpGet, nil, 0, 0, 0)}
		Join(calls)
		pa.Start(calls[0], []byte("k"))
		pb.Start(calls[1], []byte("k"))
		WaitAll(calls)
		if err := calls[0].Wait(); err != nil || string(calls[0].Value()) != "held" {
			t.Fatalf("a: %q %v", calls[0].Value(), err)
		}
		if err := calls[1].Wait(); !errors.Is(err, ErrCacheMiss) {
			t.Fatalf("b: %v, want a miss", err)
		}
		releaseCalls(calls)
		if val, _, err := getCopy(pb, "k"); !errors.Is(err, ErrCacheMiss) || len(val) > 0 {
			t.Fatalf("a released call alone: %q %v", val, err)
		}
	}
}
