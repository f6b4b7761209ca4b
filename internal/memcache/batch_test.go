package memcache

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestBatchEachItsOwnAnswer: one batch, on real memcached, of
// sets that succeed and fail in every way a store can, a store over the
// item limit and a get: each call reads its own answer, never
// a neighbour's, and what was stored is stored.
func TestBatchEachItsOwnAnswer(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	for round := range 20 {
		pre := fmt.Sprintf("r%d-", round)
		k := func(s string) []byte { return []byte(pre + s) }
		steps := []struct {
			call *Call
			key  []byte
			want error
		}{
			{NewCall(OpSet, []byte("one"), 0, 0, 60), k("a"), nil},
			{NewCall(OpSet, make([]byte, 2<<20), 0, 0, 60), k("big"), ErrServer},
			{NewCall(OpSet, []byte("two"), 0, 0, 60), k("b"), nil},
			{NewCall(OpCAS, []byte("x"), 1<<40, 0, 60), k("a"), ErrCASConflict},
			{NewCall(OpAdd, []byte("x"), 0, 0, 60), k("b"), ErrNotStored},
			{NewCall(OpCAS, []byte("x"), 1<<40, 0, 60), k("missing"), ErrCacheMiss},
			{NewCall(OpGet, nil, 0, 0, 0), k("a"), nil},
			{NewCall(OpAdd, []byte("three"), 0, 0, 60), k("c"), nil},
			{NewCall(OpSet, []byte("four"), 0, 0, 60), k("d"), nil},
		}
		calls, keys := make([]*Call, len(steps)), make([][]byte, len(steps))
		for i, s := range steps {
			calls[i], keys[i] = s.call, s.key
		}
		p.StartAll(calls, keys)
		for i, s := range steps {
			if err := s.call.Wait(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
				t.Fatalf("round %d, step %d (%s): %v, want %v", round, i, s.key, err, s.want)
			}
		}
		if v := calls[6].Value(); string(v) != "one" {
			t.Fatalf("get in the batch read %q", v)
		}
		releaseCalls(calls)
		for key, want := range map[string]string{"a": "one", "b": "two", "c": "three", "d": "four", "big": ""} {
			if val, _ := textGet(t, srv.Addr, pre+key); string(val) != want {
				t.Fatalf("round %d: %s holds %q, want %q", round, key, val, want)
			}
		}
	}
}

// TestRefusalsUnderLoad: concurrent writers on one connection, their
// sets batched together, some of them refused (a stale CAS, an add
// over a value): each writer is told its own refusal, and only its own.
func TestRefusalsUnderLoad(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, 2*time.Second, 0)
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			key := []byte(fmt.Sprintf("w%d", g))
			if err := p.Store(OpSet, key, []byte("v"), 0, 0, 60); err != nil {
				errs <- err
				return
			}
			for i := range 200 {
				var err, want error
				switch (g + i) % 3 {
				case 0:
					err = p.Store(OpSet, key, []byte("v"), 0, 0, 60)
				case 1:
					err, want = p.Store(OpCAS, key, []byte("v"), 1<<40, 0, 60), ErrCASConflict
				case 2:
					err, want = p.Store(OpAdd, key, []byte("v"), 0, 0, 60), ErrNotStored
				}
				if !errors.Is(err, want) || (want == nil) != (err == nil) {
					errs <- fmt.Errorf("writer %d, write %d: %v, want %v", g, i, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
