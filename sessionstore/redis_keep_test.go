package sessionstore

import (
	"errors"
	"testing"

	"sessionproxy/internal/redistest"
)

// TestCoherentOutageNotKept is the fault harness's finding R1
// (docs/guarantees.md): with Redis's client_cache (the default) the hot
// tiers of several proxies are kept coherent by the server, and no
// presence marks say whether other proxies are there. A change Redis did
// not take (the master down, or a Cluster shard failing over) was kept in
// this proxy's hot tier and answered as done: the other proxies kept
// serving the older copy, the change died with the proxy, and a kept
// rotation's or logout's tombstone could lose its write-back to another
// proxy's kept copy, the ID coming back for good. Such a change must fail
// (503, as with wait_replicas) instead.
func TestCoherentOutageNotKept(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o := Options{Redis: redisOpts(srv.Addr), LocalSize: 1 << 20, LocalTTL: AutoTTL} // the defaults
	a, b := newRedisStore(t, o), newRedisStore(t, o)
	if !a.Coherent() {
		t.Fatal("not coherent: client_cache is off")
	}
	id := AppendNewID(nil)
	set(t, a, id, true, "user", "alice")
	mustLoad(t, a, id, "user=alice") // in a's hot tier
	mustLoad(t, b, id, "user=alice")

	// Frozen, not stopped: a closed connection flushes the hot tier
	// (its invalidations may be lost), which leaves nothing to keep; a
	// hung master, a blackholed link or a Cluster's CLUSTERDOWN do not.
	srv.Freeze()
	defer srv.Thaw()
	var u Update
	u.Set([]byte("user"), []byte("bob"))
	err := a.change(id, &u, false, nil, nil)
	if err == nil || a.Dirty() != 0 {
		t.Fatalf("a change Redis did not take = %v, %d kept for writing back; want ErrUnavailable and none kept (another proxy cannot see it)", err, a.Dirty())
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a change Redis did not take = %v, want ErrUnavailable", err)
	}
	if err := a.Delete(id); !errors.Is(err, ErrUnavailable) || a.Dirty() != 0 {
		t.Fatalf("a logout Redis did not take = %v, %d kept", err, a.Dirty())
	}
}
