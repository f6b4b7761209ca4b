package sessionstore

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gated is a real memcached store whose reads wait at a gate, so that a
// test can have many loads of one session in flight at once.
type gated struct {
	Shared
	gate  chan struct{}
	reads atomic.Int32
}

func (g *gated) View(id []byte, to ValueTaker) error {
	g.reads.Add(1)
	<-g.gate
	return view(g.Shared, id, to)
}

func (g *gated) Get(id []byte) ([]byte, error) {
	g.reads.Add(1)
	<-g.gate
	return g.Shared.Get(id)
}

// gatedStore is a Store with no hot tier over a gated memcached store, and
// the same nodes' store to write sessions with.
func gatedStore(t *testing.T) (*Store, *gated) {
	t.Helper()
	c := startCluster(t)
	m, err := opener(KindMemcached)(Options{Memcached: MemcachedOptions{Nodes: c.nodes(), ProbeInterval: time.Hour, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	g := &gated{Shared: m, gate: make(chan struct{})}
	return newStore(t, Options{Shared: g}), g
}

// waiters is how many loads wait for the one reading id.
func (f *flights) waitersOf(id []byte) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.calls[hashID(id)]; fl != nil {
		return fl.waiters.Load()
	}
	return -1
}

// loadAll runs n loads of id at once, lets the first one's read through
// once the others wait for it, and returns what each got.
func loadAll(t *testing.T, s *Store, g *gated, id []byte, n int) ([]string, []error) {
	t.Helper()
	got, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = load(t, s, id) })
	}
	waitFor(t, "every load to wait for one read", func() bool {
		return g.reads.Load() == 1 && s.flight.waitersOf(id) == int32(n-1)
	})
	close(g.gate)
	wg.Wait()
	return got, errs
}

// TestColdLoadsShareOneRead: concurrent loads of a session that is not in
// the hot tier read the shared store once, and each gets the session.
func TestColdLoadsShareOneRead(t *testing.T) {
	s, g := gatedStore(t)
	id := AppendNewID(nil)
	close(g.gate) // writing may read
	set(t, s, id, true, "user", "bob", "visits", "3")
	g.gate = make(chan struct{})
	g.reads.Store(0)

	got, errs := loadAll(t, s, g, id, 8)
	for i := range got {
		if errs[i] != nil || got[i] != "user=bob,visits=3" {
			t.Errorf("load %d = %q, %v", i, got[i], errs[i])
		}
	}
	if r := g.reads.Load(); r != 1 {
		t.Errorf("%d shared reads for 8 concurrent loads, want 1", r)
	}
	// The flight is over: the next load reads again (no hot tier).
	mustLoad(t, s, id, "user=bob,visits=3")
	if r := g.reads.Load(); r != 2 {
		t.Errorf("%d shared reads after a later load, want 2", r)
	}
}

// TestColdLoadsShareNotFound: the waiting loads get the reader's answer
// when there is no session.
func TestColdLoadsShareNotFound(t *testing.T) {
	s, g := gatedStore(t)
	_, errs := loadAll(t, s, g, AppendNewID(nil), 5)
	for i, err := range errs {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("load %d: %v, want ErrNotFound", i, err)
		}
	}
}

// TestColdLoadsShareCorrupt: a stored value that cannot be decoded fails
// every waiting load with ErrCorrupt, not with a half-read session.
func TestColdLoadsShareCorrupt(t *testing.T) {
	s, g := gatedStore(t)
	id := AppendNewID(nil)
	var sess Session
	var u Update
	u.Set([]byte("user"), []byte("bob"))
	u.applyTo(&sess, &Session{Version: 1})
	sess.Expires = time.Now().Add(time.Hour).Unix()
	val := sess.AppendEncode(nil)
	if err := g.Shared.Put(id, val[:len(val)-1]); err != nil { // the header reads, the attribute does not
		t.Fatal(err)
	}
	_, errs := loadAll(t, s, g, id, 5)
	for i, err := range errs {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("load %d: %v, want ErrCorrupt", i, err)
		}
	}
}

// TestFlightHashCollision: a load whose ID shares its hash with another
// ID's load in flight does not wait for (or get) the other session.
func TestFlightHashCollision(t *testing.T) {
	var f flights
	a, b := []byte("session-a"), []byte("session-b")
	fa, lead := f.join(a)
	if !lead {
		t.Fatal("first join does not lead")
	}
	f.calls[hashID(b)] = fa // as if a and b hashed alike
	fb, lead := f.join(b)
	if !lead || fb == fa {
		t.Fatal("a load of b joined the load of a")
	}
	if f.calls[hashID(b)] != fa {
		t.Fatal("the colliding load replaced the one in flight")
	}
	f.land(fb, nil)
	delete(f.calls, hashID(b))
	f.keep(fa, []byte("value of a"))
	f.land(fa, nil)
	if len(f.calls) != 0 {
		t.Fatalf("%d flights left", len(f.calls))
	}
}
