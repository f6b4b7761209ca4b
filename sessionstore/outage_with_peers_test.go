package sessionstore

import (
	"errors"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestOutageWithPeersNotKept: with another proxy on the nodes (ttl auto,
// so 1s once it is seen; a ttl that is set alike), a change that no
// replica took is not acknowledged: ErrUnavailable, the proxy's 503. Kept
// in this process's hot tier and answered as done, it was a change the
// other proxies could not see: the fault harness's clients got their
// session back through this proxy and a fresh one through the others
// (docs/guarantees.md, finding A). Alone on the nodes, or with the hot
// tier trusted by configuration (ttl 0), such a change is kept and
// written back (TestStoreDownAndBack, TestKeptChangeOutlivesTheHotTiersBound).
func TestOutageWithPeersNotKept(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	nodes := []Node{{ID: "n1", Addr: a.Addr}, {ID: "n2", Addr: b.Addr}}
	for _, ttl := range []time.Duration{AutoTTL, 3 * time.Second} { // AutoTTL prints as -1ns
		one := newStore(t, Options{LocalSize: 1 << 20, LocalTTL: ttl, Memcached: MemcachedOptions{Nodes: nodes}})
		other := newStore(t, Options{LocalSize: 1 << 20, LocalTTL: ttl, Memcached: MemcachedOptions{Nodes: nodes}})
		waitFor(t, "each store sees the other's presence mark", func() bool { return one.others.Load() && other.others.Load() })
		id := AppendNewID(nil)
		set(t, one, id, true, "a", "1")
		a.Stop()
		b.Stop()
		waitFor(t, "both nodes down", func() bool {
			var s Session
			_, err := one.Load(AppendNewID(nil), &s)
			return errors.Is(err, ErrUnavailable)
		})
		var u Update
		u.Set([]byte("a"), []byte("2"))
		if err := one.change(id, &u, false, nil, nil); !errors.Is(err, ErrUnavailable) {
			t.Errorf("ttl %v: a change no replica took, another proxy on the nodes = %v, want ErrUnavailable", ttl, err)
		}
		if err := one.Delete(id); !errors.Is(err, ErrUnavailable) {
			t.Errorf("ttl %v: a logout no replica took, another proxy on the nodes = %v, want ErrUnavailable", ttl, err)
		}
		if n := one.Dirty(); n != 0 {
			t.Errorf("ttl %v: %d changes kept in the hot tier as if done", ttl, n)
		}
		a.Restart()
		b.Restart()
		one.Close()
		other.Close()
	}
}
