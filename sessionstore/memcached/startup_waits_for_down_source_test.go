package memcached

import (
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"

	"sessionproxy/sessionstore"
)

// TestStartupReconciliationWaitsForADownSource: b starts without the
// sessions a holds (it missed them while no proxy ran), and a does not
// answer when the proxy starts. b's start-up reconciliation cannot copy
// from a then; it must not count as done, or once a answers again (and
// catches up from b, which brings a nothing of b's) every one of those
// sessions is on a alone, and lost with a's next failure.
func TestStartupReconciliationWaitsForADownSource(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	const sessions = 2000
	loadSessions(t, a.Addr, sessions)

	old := metadumpIdle
	metadumpIdle = time.Second // a frozen source ends a listing within a second
	t.Cleanup(func() { metadumpIdle = old })

	freeze(t, a)
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "a", Addr: a.Addr}, {ID: "b", Addr: b.Addr}},
		Timeout: 200 * time.Millisecond, ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	na, nb := m.nodes[0], m.nodes[1]
	m.Reconciled()
	testutil.WaitFor(t, 10*time.Second, "a marked down", func() bool { return na.load() == sessionstore.StateDown })
	// Several probe intervals with a down: b's monitor retries (or not)
	// its reconciliation meanwhile.
	time.Sleep(time.Second)
	a.Thaw()
	testutil.WaitFor(t, 20*time.Second, "a caught up", func() bool { return na.load() == sessionstore.StateUp })
	waitCopied(t, nb, sessions, "b given the sessions only a holds", nil)
}
