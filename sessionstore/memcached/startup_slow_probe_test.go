package memcached

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/sessionstore"
)

// TestStartupSlowAnswerIsNotDown: a proxy that starts while node a is
// frozen (SIGSTOP) and node b is slow to answer its first questions (here
// b is frozen for a quarter of a second, as a loaded machine delayed a
// fresh process's first exchanges past the 100 ms timeout in the fault
// harness) must count a down and b up, and write sessions to b. It
// counted b down too: one timed-out answer at start made a healthy node
// down, so with a frozen it saw no replica up and kept sessions in its
// hot tier while other proxies saw b up and gave the same clients fresh
// sessions (docs/guarantees.md, finding A). With the defaults: 100 ms
// timeout, 1 s probe interval.
func TestStartupSlowAnswerIsNotDown(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	freeze(t, a)
	freeze(t, b)
	thawed := make(chan struct{})
	go func() {
		time.Sleep(250 * time.Millisecond)
		b.Thaw()
		close(thawed)
	}()
	var logs apptest.Output
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "a", Addr: a.Addr}, {ID: "b", Addr: b.Addr}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	<-thawed
	na, nb := m.nodes[0], m.nodes[1]
	if na.load() != sessionstore.StateDown {
		t.Errorf("a, frozen, is %v after start, want down", na.load())
	}
	// For two probe intervals, every session is written to b, which
	// stays up.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if st := nb.load(); st != sessionstore.StateUp {
			t.Fatalf("b, which answers, is %v; logs:\n%s", st, logs.String())
		}
		id := sessionstore.AppendNewID(nil)
		if err := m.Put(id, encodedSession(id, 1)); err != nil {
			t.Fatalf("a session written while b is up: %v; logs:\n%s", err, logs.String())
		}
		if _, err := memcachedtest.Get(b.Addr, sessionstore.DefaultKeyPrefix+string(id)); err != nil {
			t.Fatalf("a session written while b is up is not on b: %v", err)
		}
	}
	if strings.Contains(logs.String(), "node=b") && strings.Contains(logs.String(), "memcached node down") {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "memcached node down") && strings.Contains(l, "node=b ") {
				t.Fatalf("b was marked down: %s", l)
			}
		}
	}
}
