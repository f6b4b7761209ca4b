package memcached

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"

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

	// The copy is given time as long as it moves: at load 10 to 50 on
	// two cores it moved about 400 sessions a second under -race, and
	// took minutes. A copy given up on makes no progress at all.
	last, moved := nb.copied.Load(), time.Now()
	for nb.copied.Load() < sessions*99/100 {
		if c := nb.copied.Load(); c != last {
			last, moved = c, time.Now()
		}
		if time.Since(moved) > 30*time.Second {
			t.Fatalf("b given %d of a's %d sessions, none for 30s, once a's crawler is free; logs:\n%s", last, sessions, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
