package memcached

import (
	"errors"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"

	"sessionproxy/sessionstore"
)

// TestCloseStopsAStalledListing: Close stops a full copy whose source hangs
// (a frozen process, a partition) while it lists the source's keys. The
// listing waits for bytes up to metadumpIdle (30 s), and Close, waiting
// for the monitor running the copy, held a stopping process (or a reload)
// that long.
func TestCloseStopsAStalledListing(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	loadSessions(t, a.Addr, 100)
	m := idleMemcached(t, 2, sessionstore.Node{ID: "a", Addr: a.Addr}, sessionstore.Node{ID: "b", Addr: b.Addr})
	nb := m.nodes[1]
	a.Freeze()
	defer a.Thaw()
	done := make(chan error, 1)
	m.wg.Add(1) // as the monitor that runs the copy
	go func() {
		defer m.wg.Done()
		done <- m.copyAll(nb)
	}()
	time.Sleep(300 * time.Millisecond) // the listing dialled and waits
	start := time.Now()
	m.Close()
	if took := time.Since(start); took > metadumpIdle/3 {
		t.Fatalf("Close took %v with the copy's source hung (the listing's idle deadline is %v)", took, metadumpIdle)
	}
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("copy stopped by Close: %v, want errClosed", err)
	}
}
