package memcached

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mc "sessionproxy/internal/memcache"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"

	"sessionproxy/sessionstore"
)

// Every value a node stores carries its version in memcached's client
// flags (what a full copy compares, handoff.go), as another client sees
// them too; a value that is not a session carries none.
func TestStoredValuesCarryTheirVersionInTheFlags(t *testing.T) {
	srv := memcachedtest.Start(t)
	n := newNode(sessionstore.Node{ID: "a", Addr: srv.Addr}, time.Second, 0)
	defer n.dropConns()
	id := sessionstore.AppendNewID(nil)
	for _, tc := range []struct {
		op    mc.Op
		val   []byte
		flags uint32
	}{
		{mc.OpAdd, encodedSession(id, 7), 7},
		{mc.OpSet, encodedSession(id, 1<<32+9), 9},
		{mc.OpSet, []byte("not a session"), 0},
	} {
		key := []byte(sessionstore.DefaultKeyPrefix + string(sessionstore.AppendNewID(nil)))
		if err := n.store(tc.op, key, tc.val, 0, 0); err != nil {
			t.Fatal(err)
		}
		it, err := memcachedtest.Get(srv.Addr, string(key))
		if err != nil || it.Flags != tc.flags {
			t.Fatalf("stored %q: flags %v (%v), want %d", tc.val, it, err, tc.flags)
		}
		c := mc.NewCall(mc.OpFlags, nil, 0, 0, 0)
		n.pipe.Start(c, key)
		if err := c.Wait(); err != nil || c.Flags() != tc.flags {
			t.Fatalf("mg f of %q: %d (%v), want %d", tc.val, c.Flags(), err, tc.flags)
		}
		c.Release()
	}
	c := mc.NewCall(mc.OpFlags, nil, 0, 0, 0)
	n.pipe.Start(c, []byte(sessionstore.DefaultKeyPrefix+string(sessionstore.AppendNewID(nil))))
	if err := c.Wait(); !errors.Is(err, mc.ErrCacheMiss) {
		t.Fatalf("mg f of a missing key: %v, want a miss", err)
	}
	c.Release()
}

// benchSessions writes n sessions of about size bytes to m and returns
// their IDs and one encoded value.
func benchSessions(b *testing.B, m *Memcached, n, size int) ([][]byte, []byte) {
	var s sessionstore.Session
	var u sessionstore.Update
	u.Set([]byte("pad"), bytes.Repeat([]byte("x"), size))
	u.ApplyTo(&s, &sessionstore.Session{Version: 1})
	s.Expires = time.Now().Add(time.Hour).Unix()
	val := s.AppendEncode(nil)
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = sessionstore.AppendNewID(nil)
		if err := m.Put(ids[i], val); err != nil {
			b.Fatal(err)
		}
	}
	return ids, val
}

func benchMemcached(b *testing.B) (*Memcached, []*memcachedtest.Server) {
	n1, n2 := memcachedtest.Start(b), memcachedtest.Start(b)
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}, Timeout: memcachedtest.BenchTimeout})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return m, []*memcachedtest.Server{n1, n2}
}

// BenchmarkMemcachedPut is the sync write of a hot-tier proxy: 64
// concurrent writers, each a set on both replicas, 4 KiB sessions.
func BenchmarkMemcachedPut(b *testing.B) { benchPut(b, 4096) }

// BenchmarkMemcachedPutSmall is BenchmarkMemcachedPut with sessions of
// 200 bytes, as the bench runner's: small enough for quiet sets.
func BenchmarkMemcachedPutSmall(b *testing.B) { benchPut(b, 200) }

func benchPut(b *testing.B, size int) {
	m, nodes := benchMemcached(b)
	ids, val := benchSessions(b, m, 1000, size)
	var next atomic.Uint32
	b.SetParallelism(32) // 64 writers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	defer memcachedtest.ReportRusage(b, nodes...)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.Put(ids[next.Add(1)%uint32(len(ids))], val); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMemcachedGet is the cold read: 64 concurrent readers, each a
// get on both replicas, the newest copy wins.
func BenchmarkMemcachedGet(b *testing.B) {
	benchReads(b, func(m *Memcached, id []byte, _ *sessionstore.Session) error {
		_, err := m.Get(id)
		return err
	})
}

// benchReads runs read over 1,000 sessions of 4 KiB from 64 concurrent
// readers, each with a session of its own to decode into.
func benchReads(b *testing.B, read func(m *Memcached, id []byte, into *sessionstore.Session) error) {
	m, nodes := benchMemcached(b)
	ids, _ := benchSessions(b, m, 1000, 4096)
	var next atomic.Uint32
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	defer memcachedtest.ReportRusage(b, nodes...)()
	b.RunParallel(func(pb *testing.PB) {
		var s sessionstore.Session
		for pb.Next() {
			if err := read(m, ids[next.Add(1)%uint32(len(ids))], &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPutSharesOneConnectionPerNode: 64 requests writing at once reach
// each node over its one pipelined connection, not a connection each as
// with a pooled client; MaxIdleConns (max_idle_conns) sizes those
// connections, and nothing else opens one.
func TestPutSharesOneConnectionPerNode(t *testing.T) {
	for _, conns := range []int{0, 3} {
		want := max(conns, mc.DefaultConns)
		t.Run(fmt.Sprintf("MaxIdleConns=%d", conns), func(t *testing.T) { putOverConns(t, conns, want) })
	}
}

// putOverConns checks that 1,280 sets from 64 writers reach each node
// over want connections.
func putOverConns(t *testing.T, conns, want int) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	var idle [2]int64 // connections open before the store (the stats one's own included)
	for i, addr := range []string{n1.Addr, n2.Addr} {
		idle[i] = memcachedStat(t, addr, "curr_connections")
	}
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}},
		ProbeInterval: time.Hour, MaxIdleConns: conns})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var s sessionstore.Session
	var u sessionstore.Update
	u.Set([]byte("user"), []byte("bob"))
	u.ApplyTo(&s, &sessionstore.Session{Version: 1})
	s.Expires = time.Now().Add(time.Hour).Unix()
	val := s.AppendEncode(nil)
	if err := m.Put(sessionstore.AppendNewID(nil), val); err != nil { // dials one pipelined connection per node
		t.Fatal(err)
	}
	// The start-up probe and reconciliation dial connections of their
	// own: wait until they are done (only the stats connections count).
	var before [2]int
	for i, addr := range []string{n1.Addr, n2.Addr} {
		last := totalConnections(t, addr)
		testutil.WaitFor(t, 5*time.Second, "start-up connections done", func() bool {
			time.Sleep(100 * time.Millisecond)
			n := totalConnections(t, addr)
			settled := n == last+1
			last = n
			return settled
		})
		before[i] = last
	}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 20 {
				if err := m.Put(sessionstore.AppendNewID(nil), val); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, addr := range []string{n1.Addr, n2.Addr} {
		// The stats connection itself counts one.
		if opened := totalConnections(t, addr) - before[i] - 1; opened != 0 {
			t.Errorf("node %d: %d connections opened for 1,280 concurrent sets, want none beyond its %d pipelined", i+1, opened, want)
		}
		// The probe's and the listings' connections are closed; the
		// pipelined ones stay open, as many as asked for. (A start-up
		// reconciliation that timed out on a loaded machine retries on a
		// connection of its own: the wait is long, and ends when it holds.)
		testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("node %d: %d connections open", i+1, want), func() bool {
			return memcachedStat(t, addr, "curr_connections")-idle[i] == int64(want)
		})
	}
}

// totalConnections is memcached's count of connections ever accepted.
func totalConnections(t *testing.T, addr string) int {
	t.Helper()
	return int(memcachedStat(t, addr, "total_connections"))
}

// BenchmarkMemcachedView is the cold read as the Store makes it: the
// newest copy lent to a decoder, not copied out.
func BenchmarkMemcachedView(b *testing.B) {
	benchReads(b, func(m *Memcached, id []byte, into *sessionstore.Session) error {
		return m.View(id, decodeInto{into})
	})
}

// decodeInto is a ValueTaker that decodes into a session.
type decodeInto struct{ s *sessionstore.Session }

func (d decodeInto) Take(val []byte) error { return d.s.Decode(val) }

// freeze stops srv (SIGSTOP) until the test thaws it, or ends.
func freeze(t *testing.T, srv *memcachedtest.Server) {
	t.Helper()
	srv.Freeze()
	t.Cleanup(srv.Thaw) // resuming a running process does nothing
}

// A memcached store's nodes are configured ones (status pages list them
// by ID, with their failover state), not servers it finds.
func TestMemcachedNodesAreConfigured(t *testing.T) {
	srv := memcachedtest.Start(t)
	s := newStore(t, sessionstore.Options{Memcached: sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "a", Addr: srv.Addr}}}})
	if s.FindsServers() || len(s.ConfiguredNodes()) != 1 || s.ConfiguredNodes()[0].ID != "a" {
		t.Fatalf("finds servers %v, configured nodes %+v: want node a, configured", s.FindsServers(), s.ConfiguredNodes())
	}
	if local := newStore(t, sessionstore.Options{LocalSize: 1 << 20}); local.FindsServers() || local.ConfiguredNodes() != nil {
		t.Fatalf("an embedded store: finds servers %v, nodes %v", local.FindsServers(), local.ConfiguredNodes())
	}
}
