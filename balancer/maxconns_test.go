package balancer

import (
	"sync"
	"testing"
)

// TestMaxConnsSkipsFull: every policy passes over a backend at MaxConns,
// as over one that is down, without marking it down; the backup takes
// over when every regular one is full; Saturated tells full from down.
func TestMaxConnsSkipsFull(t *testing.T) {
	for _, policy := range Policies {
		t.Run(policy, func(t *testing.T) {
			bs := backends("a", "b", "c")
			bs[2].Backup = true
			bs[0].MaxConns, bs[1].MaxConns, bs[2].MaxConns = 1, 2, 1
			p, err := NewPool(policy, bs, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for range 5 {
				b := p.Take(nil)
				if b == nil {
					got += "-"
					continue
				}
				got += b.URL
			}
			// a and b fill up (in the policy's order), then the backup,
			// then nothing is left.
			if countByte(got[:3], 'a') != 1 || countByte(got[:3], 'b') != 2 || got[3:] != "c-" {
				t.Fatalf("takes = %s, want a once, b twice before the backup c, then none", got)
			}
			for _, b := range bs {
				if !b.Available() {
					t.Fatalf("full backend %s marked down", b.URL)
				}
			}
			if !p.Saturated(nil) {
				t.Fatal("Saturated = false with every backend full")
			}
			if p.Saturated(bs) {
				t.Fatal("Saturated = true with every full backend tried")
			}
			bs[1].End()
			if b := p.Take(nil); b != bs[1] {
				t.Fatalf("Take after b's End = %v, want b", b)
			}
		})
	}
}

func countByte(s string, c byte) int {
	n := 0
	for i := range len(s) {
		if s[i] == c {
			n++
		}
	}
	return n
}

// TestTryBeginRace: concurrent TryBegins never take a backend past its
// limit, and MaxConns 0 means DefaultMaxConns.
func TestTryBeginRace(t *testing.T) {
	b := &Backend{MaxConns: 50}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.TryBegin() {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 50 || b.Inflight() != 50 {
		t.Fatalf("%d TryBegins won, inflight %d; want 50 each", won, b.Inflight())
	}
	if (&Backend{}).Limit() != DefaultMaxConns {
		t.Fatalf("Limit of MaxConns 0 = %d, want %d", (&Backend{}).Limit(), DefaultMaxConns)
	}
}

// TestAdoptSharesCount: a Backend that replaces another (a reload) counts
// the requests and tunnels still open on the old one against its own
// MaxConns, and their End reaches both.
func TestAdoptSharesCount(t *testing.T) {
	old := &Backend{MaxConns: 2}
	old.Begin()
	old.Begin()
	next := &Backend{MaxConns: 3}
	next.Adopt(old)
	if next.Inflight() != 2 || !next.TryBegin() || next.TryBegin() {
		t.Fatalf("after Adopt: inflight %d, want the old backend's 2 and room for one more", next.Inflight())
	}
	old.End()
	if next.Inflight() != 2 || old.Inflight() != 2 {
		t.Fatalf("after an old tunnel ended: next %d, old %d; want 2 each", next.Inflight(), old.Inflight())
	}
	third := &Backend{}
	third.Adopt(next)
	third.Begin()
	if old.Inflight() != 3 {
		t.Fatalf("a second reload's backend counts apart: %d, want 3", old.Inflight())
	}
}
