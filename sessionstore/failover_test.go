package sessionstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Scenario 5 of the hygiene issue: a tombstone that a frozen node missed is
// replayed to it when it returns, so that losing the node that did get it
// cannot bring the logged-out session back, even across a proxy restart.
func TestInvalidationSurvivesNodeRestarts(t *testing.T) {
	c := startCluster(t)
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}, LocalSize: 1 << 20})
	id := AppendNewID(nil)
	set(t, s, id, true, "user", "alice")
	c.n2.Freeze()
	if err := s.Delete(id); err != nil { // n2 times out and is marked down
		t.Fatal(err)
	}
	if st := s.Nodes()[1]; st.State != StateDown || st.HandoffPending != 1 {
		t.Fatalf("n2 after a missed tombstone: %+v", st)
	}
	c.n2.Thaw()
	waitFor(t, "n2 up again", func() bool { return s.Nodes()[1].Up })
	if st := s.Nodes()[1]; st.HandoffPending != 0 || st.HandoffReplayed != 1 {
		t.Fatalf("n2 once up: %+v", st)
	}
	c.n1.Stop()
	c.n1.Restart() // empty
	restarted := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}, LocalSize: 1 << 20})
	if got, err := load(t, restarted, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invalidated session came back: %q, %v", got, err)
	}
}

// The failover round trip: a node killed under load and restarted empty
// leaves down within two probe intervals, catches up (the writes it missed
// and the sessions it lost) and only then serves reads; after that, losing
// the other node loses no session and serves no older version, even to a
// store that never saw the outage.
func TestFailoverRoundTripUnderLoad(t *testing.T) {
	c := startCluster(t)
	const probe = 200 * time.Millisecond
	// A killed node answers no more at once (reset, refused), whatever
	// the timeout; a long one keeps a loaded machine from timing out the
	// healthy n2 while n1 is away, which failed the writes that had
	// nowhere else to go.
	s := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes(), ProbeInterval: probe, Timeout: 2 * time.Second}})
	const sessions = 400
	ids := make([][]byte, sessions)
	for i := range ids {
		ids[i] = AppendNewID(nil)
		set(t, s, ids[i], true, "n", "0")
	}
	// Steady writers, each owning a slice of the first half of the
	// sessions and counting; the second half is left untouched, so that n1
	// gets those back only by the catch-up's full copy.
	var stop atomic.Bool
	var wg sync.WaitGroup
	counts := make([]int, sessions)
	var errs atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for !stop.Load() {
				for i := w; i < sessions/2 && !stop.Load(); i += 8 {
					var u Update
					u.Set([]byte("n"), []byte(fmt.Sprint(counts[i]+1)))
					if err := s.change(ids[i], &u, false, nil, nil); err != nil {
						errs.Add(1)
						continue
					}
					counts[i]++
				}
			}
		}(w)
	}
	time.Sleep(100 * time.Millisecond)
	c.n1.Stop()
	waitFor(t, "n1 down", func() bool { return s.Nodes()[0].State == StateDown })
	time.Sleep(300 * time.Millisecond) // writes only n2 takes
	var born [][]byte                  // sessions that only ever lived while n1 was away
	for i := 0; i < 50; i++ {
		id := AppendNewID(nil)
		set(t, s, id, true, "born", "away")
		born = append(born, id)
	}
	c.n1.Restart()
	back := time.Now()
	waitFor(t, "n1 out of down", func() bool { return s.Nodes()[0].State != StateDown })
	if d := time.Since(back); d > 2*probe+100*time.Millisecond {
		t.Errorf("n1 left down %v after it answered again, want within two probe intervals (%v)", d, 2*probe)
	}
	waitFor(t, "n1 up", func() bool { return s.Nodes()[0].Up })
	time.Sleep(100 * time.Millisecond) // writes both take again
	stop.Store(true)
	wg.Wait()
	if n := errs.Load(); n != 0 {
		t.Errorf("%d updates failed during the round trip", n)
	}
	if st := s.Nodes()[0]; st.Copied < sessions/2 || st.Catchups != 1 || st.HandoffReplayed == 0 {
		t.Errorf("n1's catch-up did not copy back the untouched sessions: %+v", st)
	}
	c.n2.Stop()
	restarted := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}})
	for i, id := range ids {
		mustLoad(t, restarted, id, fmt.Sprintf("n=%d", counts[i]))
	}
	for _, id := range born {
		mustLoad(t, restarted, id, "born=away")
	}
}

// Replicas that drifted apart while no proxy ran (a tombstone one of them
// missed) are made whole by the next proxy's start-up reconciliation, so
// that losing the node that had the tombstone cannot revive the session.
func TestStartupReconcilesDriftedReplicas(t *testing.T) {
	c := startCluster(t)
	first := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}})
	id := AppendNewID(nil)
	set(t, first, id, true, "user", "alice")
	first.Close()
	// A logout that only n1 saw.
	onlyN1 := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()[:1], Replicas: 1}})
	if err := onlyN1.Delete(id); err != nil {
		t.Fatal(err)
	}
	onlyN1.Close()
	key := "sp:" + string(id)
	if v := rawVersion(t, c.n2.Addr, key); v != 1 {
		t.Fatalf("n2 holds version %d, want the live session (1)", v)
	}
	next := newStore(t, Options{Memcached: MemcachedOptions{Nodes: c.nodes()}})
	waitFor(t, "tombstone copied to n2", func() bool { return rawVersion(t, c.n2.Addr, key) == 2 })
	c.n1.Stop()
	c.n1.Restart()
	if got, err := load(t, next, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("logged-out session came back: %q %v", got, err)
	}
}
