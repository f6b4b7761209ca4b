package memcached

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mc "sessionproxy/internal/memcache"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"

	"sessionproxy/sessionstore"
)

// Full copies (copyAll) over real memcached nodes holding many keys.

// idleMemcached is a Memcached over nodes with no monitors: the test plays
// the monitor's part and calls copyAll itself, so that no start-up
// reconciliation's metadump runs meanwhile.
func idleMemcached(t *testing.T, replicas int, nodes ...sessionstore.Node) *Memcached {
	t.Helper()
	m := &Memcached{opts: sessionstore.MemcachedOptions{Nodes: nodes, Replicas: replicas, KeyPrefix: sessionstore.DefaultKeyPrefix,
		Timeout: time.Second}, closed: make(chan struct{})}
	for _, n := range nodes {
		m.nodes = append(m.nodes, newNode(n, time.Second, 8))
	}
	t.Cleanup(m.Close)
	return m
}

// encodedSession is a stored session of id at version, expiring in an hour.
func encodedSession(id []byte, version uint64) []byte {
	now := time.Now()
	s := sessionstore.Session{ID: id, Created: now.UnixMilli(), Version: version, Touched: now.Unix(), Expires: now.Unix() + 3600}
	return s.AppendEncode(nil)
}

// rawLoader writes items straight to a memcached node, pipelined and
// without replies, fast enough for a few hundred thousand.
type rawLoader struct {
	t     *testing.T
	addr  string
	c     net.Conn
	w     *bufio.Writer
	items int
}

func newRawLoader(t *testing.T, addr string) *rawLoader {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawLoader{t: t, addr: addr, c: c, w: bufio.NewWriterSize(c, 64<<10)}
}

func (l *rawLoader) set(key string, val []byte) { l.setFlags(key, val, 0) }

// setFlags is set with memcached client flags (0: as written before the
// store set them).
func (l *rawLoader) setFlags(key string, val []byte, flags uint32) {
	fmt.Fprintf(l.w, "set %s %d 3600 %d noreply\r\n", key, flags, len(val))
	l.w.Write(val)
	l.w.WriteString("\r\n")
	l.items++
}

// done waits until the node has stored everything and checks that it holds
// every item written (none evicted or refused).
func (l *rawLoader) done() {
	l.t.Helper()
	l.w.WriteString("mn\r\n")
	if err := l.w.Flush(); err != nil {
		l.t.Fatal(err)
	}
	l.c.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReader(l.c).ReadString('\n')
	if err != nil || line != "MN\r\n" {
		l.t.Fatalf("loading %s: %q %v", l.addr, line, err)
	}
	st, err := mc.ReadStats(l.addr, time.Second)
	if err != nil || st.CurrItems != int64(l.items) {
		l.t.Fatalf("%s holds %d items, want %d (%v)", l.addr, st.CurrItems, l.items, err)
	}
	settleLRU(l.t, l.addr)
}

// settleLRU waits until memcached's LRU maintainer has moved every item
// just written out of the HOT LRU. A metadump walks the LRUs, and can miss
// an item that moves from one to another meanwhile (memcached's
// protocol.txt says so): tests that count what a listing finds start from
// LRUs at rest.
func settleLRU(t *testing.T, addr string) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "memcached's HOT LRU emptied on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "stats items\r\n")
		r := bufio.NewReader(c)
		hot := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "END\r\n" {
				return hot == 0
			}
			// STAT items:<class>:number_hot <n>
			if f := strings.Fields(line); len(f) == 3 && strings.HasSuffix(f[1], ":number_hot") {
				n, _ := strconv.Atoi(f[2])
				hot += n
			}
		}
	})
}

// owner is the node that holds id with one replica.
func owner(m *Memcached, id []byte) *node {
	var p placement
	m.place(id, &p)
	return p.all[0]
}

// A node restarted empty gets back, by its catch-up's full copy, the
// 20,000 sessions the other node holds, at the version it holds, and
// nothing that is not a session of this store.
func TestFullCopyBringsBackManySessions(t *testing.T) {
	c := startCluster(t)
	const sessions = 20000
	ids := make([]string, sessions)
	for _, addr := range []string{c.n1.Addr, c.n2.Addr} {
		l := newRawLoader(t, addr)
		for i := range ids {
			if ids[i] == "" {
				ids[i] = string(sessionstore.AppendNewID(nil))
			}
			l.set(sessionstore.DefaultKeyPrefix+ids[i], encodedSession([]byte(ids[i]), uint64(1+i%7)))
		}
		l.done()
	}
	// Not sessions of this store: another prefix, and the prefix without a
	// valid ID. A full copy leaves them where they are.
	foreign := []string{"other:" + ids[0], sessionstore.DefaultKeyPrefix + "not-an-id", sessionstore.DefaultKeyPrefix + ids[0][:sessionstore.IDLen-1]}
	for _, k := range foreign {
		if err := memcachedtest.Set(c.n2.Addr, k, encodedSession([]byte(ids[0]), 9), 0); err != nil {
			t.Fatal(err)
		}
	}

	s := newStore(t, sessionstore.Options{Memcached: sessionstore.MemcachedOptions{Nodes: c.nodes(), Timeout: time.Second}})
	c.n1.Restart()
	testutil.WaitFor(t, 2*time.Minute, "n1 caught up", func() bool {
		st := s.Nodes()[0]
		return st.Up && st.Catchups >= 1
	})
	if st := s.Nodes()[0]; st.Copied < sessions {
		t.Errorf("n1 was copied %d sessions, want all %d: %+v", st.Copied, sessions, st)
	}
	missing := 0
	for i := 0; i < sessions; i += 500 {
		keys := make([]string, 0, 500)
		for _, id := range ids[i:min(i+500, sessions)] {
			keys = append(keys, sessionstore.DefaultKeyPrefix+id)
		}
		got, err := memcachedtest.GetMulti(c.n1.Addr, keys...)
		if err != nil {
			t.Fatal(err)
		}
		for j, k := range keys {
			it := got[k]
			if it == nil {
				missing++
				continue
			}
			if v, err := peekVersion(it.Value); err != nil || v != uint64(1+(i+j)%7) {
				t.Fatalf("session %d on n1 at version %d (%v), want %d", i+j, v, err, 1+(i+j)%7)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d sessions missing on n1 after the full copy", missing, sessions)
	}
	for _, k := range foreign {
		if _, err := memcachedtest.Get(c.n1.Addr, k); err != memcachedtest.ErrMiss {
			t.Errorf("%q, not a session of this store, was copied to n1 (%v)", k, err)
		}
	}
}

// heapSampler records the largest live heap (after a collection) seen
// while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			h.peak = max(h.peak, liveHeap())
			select {
			case <-h.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return h
}

func (h *heapSampler) end() uint64 {
	close(h.stop)
	<-h.done
	return h.peak
}

// copyGrowth loads keys sessions on a fresh node A, about 1% of them placed
// on a second node B (with one replica), copies B's share to B with a full
// copy, and returns how much the live heap grew at most meanwhile.
func copyGrowth(t *testing.T, keys int) uint64 {
	t.Helper()
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	m := idleMemcached(t, 1, sessionstore.Node{ID: "a", Addr: a.Addr}, sessionstore.Node{ID: "b", Addr: b.Addr})
	nb := m.nodes[1]
	l := newRawLoader(t, a.Addr)
	var forB []string
	for l.items < keys {
		id := sessionstore.AppendNewID(nil)
		if owner(m, id) == nb {
			if len(forB) >= keys/100 {
				continue
			}
			forB = append(forB, sessionstore.DefaultKeyPrefix+string(id))
		}
		l.set(sessionstore.DefaultKeyPrefix+string(id), encodedSession(id, 1))
	}
	l.done()

	base := liveHeap()
	h := sampleHeap()
	err := m.copyAll(nb)
	peak := h.end()
	if err != nil {
		t.Fatal(err)
	}
	// Every session placed on b, and nothing placed on a.
	copied := nb.copied.Load()
	if copied != int64(len(forB)) {
		t.Fatalf("%d keys: copied %d sessions to b, want the %d placed on b", keys, copied, len(forB))
	}
	if st, err := mc.ReadStats(b.Addr, time.Second); err != nil || st.CurrItems != copied {
		t.Fatalf("b holds %d items, want only the %d copied to it (%v)", st.CurrItems, copied, err)
	}
	if peak < base {
		return 0
	}
	return peak - base
}

// A full copy holds one batch of keys at a time, not the source's whole
// listing: the live heap it needs does not grow with the number of keys the
// source holds. Holding 200,000 keys' strings and a slice of them would
// take about 10 MiB more than holding 20,000.
func TestFullCopyMemoryIsBounded(t *testing.T) {
	small := copyGrowth(t, 20000)
	large := copyGrowth(t, 200000)
	t.Logf("live heap growth during a full copy: %d KiB over 20,000 keys, %d KiB over 200,000", small>>10, large>>10)
	if large > small+2<<20 {
		t.Errorf("a full copy over 200,000 keys grew the live heap by %d KiB, over 20,000 by %d KiB: "+
			"memory scales with the number of keys", large>>10, small>>10)
	}
}

// loadSessions writes n sessions at version 1 to the node at addr.
func loadSessions(t *testing.T, addr string, n int) {
	t.Helper()
	l := newRawLoader(t, addr)
	for i := 0; i < n; i++ {
		id := sessionstore.AppendNewID(nil)
		l.set(sessionstore.DefaultKeyPrefix+string(id), encodedSession(id, 1))
	}
	l.done()
}

// While another metadump runs on the source (another proxy's catch-up),
// memcached answers BUSY: the full copy fails, so that the monitor tries
// again, and lists every key once the other dump is over.
func TestFullCopyBusySourceIsAnError(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	const sessions = 150000
	loadSessions(t, a.Addr, sessions)
	m := idleMemcached(t, 2, sessionstore.Node{ID: "a", Addr: a.Addr}, sessionstore.Node{ID: "b", Addr: b.Addr})
	na, nb := m.nodes[0], m.nodes[1]

	// Another reader's dump that reads nothing keeps a's crawler busy.
	other := busyListing(t, a.Addr)
	defer other.Close()
	err := m.copyAll(nb)
	if err == nil || !strings.Contains(err.Error(), "BUSY") || !strings.Contains(err.Error(), "listing keys of a") {
		t.Fatalf("full copy while another metadump runs: %v, want memcached's BUSY", err)
	}
	if nb.copied.Load() != 0 {
		t.Fatalf("copied %d sessions from a busy listing", nb.copied.Load())
	}
	other.Close()
	// memcached notices the other reader is gone within about a second.
	var listed int
	var last error
	testutil.WaitFor(t, 20*time.Second, "a listing once the other dump is over", func() bool {
		listed = 0
		last = m.eachKey(na, func([]byte) error { listed++; return nil })
		return last == nil
	})
	// Not all of them: a dump can miss an item memcached moves between its
	// LRUs meanwhile (internal/memcache/metadump.go), and on a loaded machine it did miss one.
	if listed < sessions*99/100 || listed > sessions {
		t.Fatalf("listed %d sessions, want about %d (last error %v)", listed, sessions, last)
	}
}

// A destination that dies in the middle of a full copy stops it with an
// error and is marked down; so does a source that dies (its listing
// breaks, or its multi-gets fail).
func TestFullCopyStopsWhenANodeDies(t *testing.T) {
	for _, dying := range []string{"destination", "source"} {
		t.Run(dying, func(t *testing.T) {
			a, b := memcachedtest.Start(t), memcachedtest.Start(t)
			loadSessions(t, a.Addr, 20000)
			m := idleMemcached(t, 2, sessionstore.Node{ID: "a", Addr: a.Addr}, sessionstore.Node{ID: "b", Addr: b.Addr})
			na, nb := m.nodes[0], m.nodes[1]
			done := make(chan error, 1)
			go func() { done <- m.copyAll(nb) }()
			var copying atomic.Bool
			testutil.WaitFor(t, time.Minute, "copy under way", func() bool {
				copying.Store(nb.copied.Load() >= int64(copyBatch))
				return copying.Load()
			})
			victim, vn := b, nb
			if dying == "source" {
				victim, vn = a, na
			}
			victim.Stop()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("full copy succeeded after the %s died, having copied %d of 20000", dying, nb.copied.Load())
				}
				t.Logf("full copy with the %s dead: %v", dying, err)
			case <-time.After(time.Minute):
				t.Fatalf("full copy still running a minute after the %s died", dying)
			}
			if nb.copied.Load() >= 20000 {
				t.Fatalf("copied all 20000 sessions: the %s died too late to test anything", dying)
			}
			if dying == "destination" && vn.load() != sessionstore.StateDown {
				t.Fatalf("dead destination is %v, want down", vn.load())
			}
		})
	}
}

// TestFullCopyUnderReadsMissesNothing: sessions read (twice, which moves
// them between memcached's LRUs) while the full copy lists the node are
// all copied. Listing the LRUs ("metadump all") missed thousands here.
func TestFullCopyUnderReadsMissesNothing(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	m := idleMemcached(t, 2, sessionstore.Node{ID: "a", Addr: a.Addr}, sessionstore.Node{ID: "b", Addr: b.Addr})
	nb := m.nodes[1]
	const sessions = 30000
	keys := make([]string, sessions)
	l := newRawLoader(t, a.Addr)
	for i := range keys {
		id := sessionstore.AppendNewID(nil)
		keys[i] = sessionstore.DefaultKeyPrefix + string(id)
		l.set(keys[i], encodedSession(id, 1))
	}
	l.done()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := mc.New(a.Addr, 5*time.Second, 0)
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[rand.N(len(keys))]
				for range 2 {
					v, _ := c.Get([]byte(k))
					v.Release()
				}
			}
		})
	}
	err := m.copyAll(nb)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := nb.copied.Load(); got != sessions {
		t.Fatalf("copied %d of %d sessions while they were being read", got, sessions)
	}
}

// Close stops a start-up reconciliation in the middle of its copy: a
// process asked to stop over a node holding many sessions is not held
// until every one is copied, and nothing is copied once Close returns.
func TestCloseStopsTheStartupCopy(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	const sessions = 100000
	loadSessions(t, a.Addr, sessions)
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "a", Addr: a.Addr}, {ID: "b", Addr: b.Addr}},
		Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	nb := m.nodes[1]
	testutil.WaitFor(t, time.Minute, "start-up copy under way", func() bool {
		return nb.copied.Load() >= int64(copyBatch)
	})
	m.Close()
	stopped := nb.copied.Load()
	if stopped >= sessions {
		t.Fatalf("Close returned after the whole copy (%d sessions): it did not stop it", stopped)
	}
	time.Sleep(50 * copyPause)
	if now := nb.copied.Load(); now != stopped {
		t.Fatalf("%d sessions copied after Close returned", now-stopped)
	}
	m.Reconciled() // over, not waiting for a copy that no longer runs
	t.Logf("copy stopped after %d of %d sessions", stopped, sessions)
}

// A full copy between replicas that hold the same versions reads the
// version flags only, not the values: the start-up reconciliation of a
// healthy pair of nodes moves almost nothing. What does differ is still
// copied: a newer version (flags differ), a session the destination
// lacks, and one stored without flags (by an older build) at an older
// version; one without flags at the same version is left alone.
func TestFullCopyOfAgreeingReplicasReadsNoValues(t *testing.T) {
	a, b := memcachedtest.Start(t), memcachedtest.Start(t)
	const agree, size = 20000, 2048
	pad := strings.Repeat("x", size)
	var u sessionstore.Update
	u.Set([]byte("pad"), []byte(pad))
	session := func(id []byte, version uint64) []byte {
		var s sessionstore.Session
		u.ApplyTo(&s, &sessionstore.Session{ID: id, Version: version, Created: time.Now().UnixMilli(), Touched: time.Now().Unix()})
		s.Expires = time.Now().Add(time.Hour).Unix()
		return s.AppendEncode(nil)
	}
	la, lb := newRawLoader(t, a.Addr), newRawLoader(t, b.Addr)
	for i := 0; i < agree; i++ {
		id := sessionstore.AppendNewID(nil)
		v := session(id, 3)
		la.setFlags(sessionstore.DefaultKeyPrefix+string(id), v, versionFlags(v))
		lb.setFlags(sessionstore.DefaultKeyPrefix+string(id), v, versionFlags(v))
	}
	var newer, missing, legacyOld, legacySame []string
	for i := 0; i < 50; i++ {
		for _, group := range []*[]string{&newer, &missing, &legacyOld, &legacySame} {
			id := sessionstore.AppendNewID(nil)
			key := sessionstore.DefaultKeyPrefix + string(id)
			*group = append(*group, key)
			v3, v4 := session(id, 3), session(id, 4)
			switch group {
			case &newer:
				la.setFlags(key, v4, versionFlags(v4))
				lb.setFlags(key, v3, versionFlags(v3))
			case &missing:
				la.setFlags(key, v4, versionFlags(v4))
			case &legacyOld:
				la.set(key, v4)
				lb.set(key, v3)
			case &legacySame:
				la.set(key, v4)
				lb.set(key, v4)
			}
		}
	}
	la.done()
	lb.done()

	m := idleMemcached(t, 2, sessionstore.Node{ID: "a", Addr: a.Addr}, sessionstore.Node{ID: "b", Addr: b.Addr})
	nb := m.nodes[1]
	before := memcachedStat(t, a.Addr, "bytes_written") + memcachedStat(t, b.Addr, "bytes_written")
	if err := m.copyAll(nb); err != nil {
		t.Fatal(err)
	}
	sent := memcachedStat(t, a.Addr, "bytes_written") + memcachedStat(t, b.Addr, "bytes_written") - before
	// The listing alone is about 100 bytes a key; the values are 2 KiB.
	if values := int64(agree * size); sent > values/5 {
		t.Errorf("the nodes sent %d bytes for a copy of %d agreeing sessions of %d bytes: values were read", sent, agree, size)
	}
	if want := int64(len(newer) + len(missing) + len(legacyOld)); nb.copied.Load() != want {
		t.Errorf("copied %d sessions, want %d (the differing ones)", nb.copied.Load(), want)
	}
	for _, group := range [][]string{newer, missing, legacyOld, legacySame} {
		got, err := memcachedtest.GetMulti(b.Addr, group...)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range group {
			it := got[k]
			if it == nil {
				t.Fatalf("%s missing on b after the copy", k)
			}
			if v, err := peekVersion(it.Value); err != nil || v != 4 {
				t.Fatalf("%s on b at version %d (%v), want 4", k, v, err)
			}
		}
	}
	t.Logf("copy of %d agreeing and %d differing sessions: the nodes sent %d bytes", agree, 4*len(newer), sent)
}

// memcachedStat is one counter of memcached's stats.
func memcachedStat(t *testing.T, addr, name string) int64 {
	t.Helper()
	return memcachedtest.Stat(t, addr, name)
}

// busyListing starts a metadump on addr that nobody reads, through a
// small receive buffer: the dump cannot fit in the sockets' buffers, so
// memcached's crawler waits for it and answers other dumps BUSY until
// the returned connection is closed.
func busyListing(t *testing.T, addr string) net.Conn {
	t.Helper()
	other, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	other.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := other.Write([]byte("lru_crawler metadump hash\r\n")); err != nil {
		t.Fatal(err)
	}
	other.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := other.Read(make([]byte, 1)); err != nil {
		t.Fatalf("the other dump did not start: %v", err)
	}
	return other
}
