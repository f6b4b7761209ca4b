package sessionstore

import (
	"testing"
	"time"

	"sessionproxy/internal/memcache"
)

// TestPresenceOneEmptyRoundIsNotAlone: a proxy that sees no other mark in
// one round, while another proxy still serves but has missed its
// refreshes (its rounds timed out on a loaded machine, and its marks
// expired), stays bounded: it is alone only once no other mark has been
// seen for MarkTTL. It trusted its hot tier again after one such round
// (the fault harness, load average 50, three proxies running), and served
// copies the others had changed. Here b refreshes every 2 s, and its marks
// are expired by hand just after a refresh.
func TestPresenceOneEmptyRoundIsNotAlone(t *testing.T) {
	c := startCluster(t)
	a := autoStore(t, c, AutoTTL)
	b := newStore(t, Options{LocalSize: 1 << 20, LocalTTL: AutoTTL,
		Memcached: MemcachedOptions{Nodes: c.nodes(), ProbeInterval: 2 * time.Second}})
	waitFor(t, "a sees b", a.Crowded)
	for _, n := range c.nodes() {
		p := memcache.New(n.Addr, time.Second, 0)
		// An expiry in the past drops it at once, as a mark not
		// refreshed in time is dropped.
		if err := p.Store(memcache.OpSet, []byte(DefaultKeyPrefix+"proxy:"+b.opts.InstanceID), []byte("2000"), 0, 0, -1); err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	// a's rounds (every 100 ms) see no mark of b until b's next refresh,
	// within 2 s.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !a.Crowded() {
			t.Fatal("a trusts its hot tier again after a round without b's mark, b still running")
		}
	}
}
