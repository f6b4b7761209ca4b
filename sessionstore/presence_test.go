package sessionstore

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
)

// autoStore is a store with the defaults' hot tier (LocalTTL AutoTTL) over
// c's nodes, refreshing presence marks every 100ms.
func autoStore(t *testing.T, c *cluster, ttl time.Duration) *Store {
	t.Helper()
	return newStore(t, Options{LocalSize: 1 << 20, LocalTTL: ttl,
		Memcached: MemcachedOptions{Nodes: c.nodes(), ProbeInterval: 100 * time.Millisecond}})
}

// TestPresenceAuto: a store alone on its nodes trusts its hot tier; a
// second one over the same nodes sees the first at once (before its first
// request) and the first sees it within a round; both then bound their
// hot tiers, and once one closes, its mark expires and the other trusts
// its hot tier again. An explicit ttl 0 is kept whatever the marks say.
func TestPresenceAuto(t *testing.T) {
	c := startCluster(t)
	a := autoStore(t, c, AutoTTL)
	time.Sleep(300 * time.Millisecond)
	if a.Crowded() {
		t.Fatal("a store alone on its nodes is crowded")
	}
	explicit := autoStore(t, c, 0)
	b := autoStore(t, c, AutoTTL)
	if !b.Crowded() {
		t.Fatal("a store started beside another does not see it before its first request")
	}
	testutil.WaitFor(t, 2*time.Second, "the first store sees the second", a.Crowded)
	if explicit.Crowded() {
		t.Fatal("local ttl 0 set explicitly was bounded")
	}
	// The roster lists the three instances, on each node.
	for _, addr := range []string{c.n1.Addr, c.n2.Addr} {
		it, err := memcachedtest.Get(addr, "sp:proxies")
		if err != nil {
			t.Fatal(err)
		}
		// The roster's format is the memcached store's (its own tests
		// parse it): IDs separated by single spaces.
		if ids := strings.Split(string(it.Value), " "); len(ids) != 3 {
			t.Fatalf("roster on %s: %q, want 3 instances", addr, it.Value)
		}
	}
	explicit.Close()
	b.Close()
	start := time.Now()
	// Its mark expires (MarkTTL), then none is seen for MarkTTL (settle).
	testutil.WaitFor(t, 2*MarkTTL(100*time.Millisecond)+2*time.Second, "the first store alone again", func() bool { return !a.Crowded() })
	if d := time.Since(start); d < AutoCrowdedTTL {
		t.Fatalf("trusted the hot tier again %v after the other left: copies it read while the other was there may still be cached", d)
	}
	// The roster has dropped the gone instances.
	testutil.WaitFor(t, time.Second, "the roster drops the gone instances", func() bool {
		it, err := memcachedtest.Get(c.n1.Addr, "sp:proxies")
		return err == nil && !bytes.Contains(it.Value, []byte(" "))
	})
}

// TestPresenceBoundsCachedCopies: copies cached while a store was alone
// are re-read within AutoCrowdedTTL once another store is seen, so that a
// logout through the other is served within that bound.
func TestPresenceBoundsCachedCopies(t *testing.T) {
	c := startCluster(t)
	a := autoStore(t, c, AutoTTL)
	id := AppendNewID(nil)
	set(t, a, id, true, "user", "ann")
	var out Session
	if src, err := a.Load(id, &out); err != nil || src != FromLocal {
		t.Fatalf("load through a: %v %v, want the hot tier", src, err)
	}
	b := autoStore(t, c, AutoTTL)
	testutil.WaitFor(t, 2*time.Second, "a sees b", a.Crowded)
	if err := b.Delete(id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.WaitFor(t, 3*time.Second, "the logout through b reaches a", func() bool {
		_, err := a.Load(id, &out)
		return err == ErrNotFound
	})
	if d := time.Since(start); d > AutoCrowdedTTL+500*time.Millisecond {
		t.Fatalf("a served the session %v after its logout through b", d)
	}
}

// TestPresenceStartWaitsToBeSeen: a store that starts beside another waits
// until the other has seen it. Until then the other trusts its hot tier
// and writes sessions over whatever is held: a logout through the new
// store, followed at once by a change through the old one, came back to
// life (the old store's write built on its cached copy).
func TestPresenceStartWaitsToBeSeen(t *testing.T) {
	c := startCluster(t)
	opts := Options{LocalSize: 1 << 20, LocalTTL: AutoTTL,
		Memcached: MemcachedOptions{Nodes: c.nodes(), ProbeInterval: time.Second}}
	a := newStore(t, opts)
	id := AppendNewID(nil)
	set(t, a, id, true, "user", "ann")
	start := time.Now()
	b := newStore(t, opts)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("the second store started after %v, before the first could see it", d)
	}
	if !a.Crowded() {
		t.Fatal("the second store started before the first saw it")
	}
	if err := b.Delete(id); err != nil {
		t.Fatal(err)
	}
	var u Update
	u.Set([]byte("cart"), []byte("1"))
	a.change(id, &u, false, nil, nil) // ErrNotFound, if it sees the logout
	// What the nodes hold (b's hot tier has its own tombstone).
	val, err := b.shared.Get(id)
	var out Session
	if err != nil || out.Decode(val) != nil || !out.Deleted {
		t.Fatalf("after a logout through b and a change through a, the nodes hold %+v (%v): the logout was undone", out, err)
	}
}
