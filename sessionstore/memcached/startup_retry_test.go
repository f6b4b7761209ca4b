package memcached

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"

	"sessionproxy/sessionstore"
)

// syncBuffer collects log output written from the monitors' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartupCopyRetriedAfterBusy: a start-up reconciliation whose listing
// memcached refuses with BUSY (another metadump runs on the source: another
// proxy's catch-up, an operator's dump, memcached's own crawler) is tried
// again, as a catch-up's is. Given up on, the node stays up without the
// sessions it should hold: each of them is then on one replica only, and
// lost with that replica.
func TestStartupCopyRetriedAfterBusy(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	const sessions = 60000
	loadSessions(t, a.Addr, sessions)

	// Another reader's dump that reads nothing holds a's crawler busy (as
	// in TestFullCopyBusySourceIsAnError).
	other := busyListing(t, a.Addr)
	defer other.Close()

	var logs syncBuffer
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "a", Addr: a.Addr}, {ID: "b", Addr: b.Addr}},
		Timeout: time.Second, ProbeInterval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nb := m.nodes[1]
	m.Reconciled()
	if !strings.Contains(logs.String(), "BUSY") {
		t.Fatalf("b's start-up copy was not refused BUSY, nothing to test; logs:\n%s", logs.String())
	}
	other.Close() // memcached notices within about a second

	testutil.WaitFor(t, 30*time.Second, "b given a's sessions once a's crawler is free", func() bool {
		return nb.copied.Load() >= sessions*99/100
	})
}
