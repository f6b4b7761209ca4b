package sessionstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
)

// TestMetaPipeConcurrent: many callers at once, their commands batched on
// a few connections; each reads back its own value, and gomemcache reads
// what the meta commands wrote.
func TestMetaPipeConcurrent(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := newMetaPipe(srv.Addr, time.Second)
	defer p.close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", g)
			for i := range 50 {
				val := bytes.Repeat([]byte{byte('a' + g%26)}, 1+(g*i)%5000)
				if err := p.store(opSet, []byte(key), val, 0, 60); err != nil {
					errs <- err
					return
				}
				got, _, err := getCopy(p, key)
				if err != nil || !bytes.Equal(got, val) {
					errs <- fmt.Errorf("%s: got %d bytes, %v; want %d bytes", key, len(got), err, len(val))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	it, err := memcache.New(srv.Addr).Get("k3")
	if err != nil || len(it.Value) == 0 || it.Value[0] != 'd' {
		t.Fatalf("gomemcache reads %v, %v", it, err)
	}
	if _, _, err := getCopy(p, "absent"); !errors.Is(err, memcache.ErrCacheMiss) || nodeFailed(err) {
		t.Fatalf("absent key: %v, want a miss", err)
	}
}

// TestMetaPipeCASAndAdd: add stores only where nothing is, CAS only over
// the version read, and their refusals are answers that leave the node up.
func TestMetaPipeCASAndAdd(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := newMetaPipe(srv.Addr, time.Second)
	defer p.close()
	if err := p.store(opAdd, []byte("k"), []byte("one"), 0, 60); err != nil {
		t.Fatalf("add to an empty key: %v", err)
	}
	if err := p.store(opAdd, []byte("k"), []byte("two"), 0, 60); !errors.Is(err, memcache.ErrNotStored) || nodeFailed(err) {
		t.Fatalf("add over a value: %v, want not stored", err)
	}
	val, cas, err := getCopy(p, "k")
	if err != nil || string(val) != "one" || cas == 0 {
		t.Fatalf("get: %q cas %d %v", val, cas, err)
	}
	if err := p.store(opCAS, []byte("k"), []byte("three"), cas, 60); err != nil {
		t.Fatalf("CAS with the id read: %v", err)
	}
	if err := p.store(opCAS, []byte("k"), []byte("four"), cas, 60); !errors.Is(err, memcache.ErrCASConflict) || nodeFailed(err) {
		t.Fatalf("CAS with a stale id: %v, want a conflict", err)
	}
	if err := p.store(opCAS, []byte("gone"), []byte("x"), cas, 60); !errors.Is(err, memcache.ErrCacheMiss) || nodeFailed(err) {
		t.Fatalf("CAS on a missing key: %v, want a miss", err)
	}
	if val, _, _ := getCopy(p, "k"); string(val) != "three" {
		t.Fatalf("after the refused writes the key holds %q, want three", val)
	}
}

// TestMetaPipeRefusedValueKeepsTheConnection: a value over memcached's item
// limit is refused with an error that does not take the node down, and
// every connection stays in step for the next command.
func TestMetaPipeRefusedValueKeepsTheConnection(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := newMetaPipe(srv.Addr, time.Second)
	defer p.close()
	err := p.store(opSet, []byte("big"), make([]byte, 2<<20), 0, 60)
	if err == nil || nodeFailed(err) {
		t.Fatalf("2 MiB value: %v, want a refusal that leaves the node up", err)
	}
	for range 2 * metaConns {
		if err := p.store(opSet, []byte("small"), []byte("v"), 0, 60); err != nil {
			t.Fatalf("after the refusal: %v", err)
		}
		if val, _, err := getCopy(p, "small"); err != nil || string(val) != "v" {
			t.Fatalf("after the refusal: %q %v", val, err)
		}
	}
}

// TestMetaPipeFrozenNodeTimesOut: a node that stops answering fails the
// commands in flight with a timeout that takes it down; a stopped node
// fails at the dial; once it is back, commands work on new connections.
func TestMetaPipeFrozenNodeTimesOut(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := newMetaPipe(srv.Addr, 200*time.Millisecond)
	defer p.close()
	if err := p.store(opSet, []byte("k"), []byte("v"), 0, 60); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = getCopy(p, "k") })
	}
	wg.Wait()
	srv.Thaw()
	for i, err := range errs {
		if err == nil || !nodeFailed(err) {
			t.Fatalf("get %d on a frozen node: %v, want a failure", i, err)
		}
	}
	p.close()
	srv.Stop()
	if _, _, err := getCopy(p, "k"); err == nil || !nodeFailed(err) {
		t.Fatalf("stopped node: %v, want a failure", err)
	}
	srv.Restart()
	for range 2 * metaConns {
		if err := p.store(opSet, []byte("k"), []byte("w"), 0, 60); err != nil {
			t.Fatalf("restarted node: %v", err)
		}
	}
}

// TestMetaPipeGarbageFailsTheLink: a server that answers out of protocol
// fails the call with an error that takes the node down, and the calls
// behind it on that connection fail too instead of reading someone
// else's answer.
func TestMetaPipeGarbageFailsTheLink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "mg ") {
						c.Write([]byte("VA 5\r\nhel")) // short value, then a command's worth of junk
						c.Write([]byte("junkjunk\r\nHD\r\n"))
					}
				}
			}()
		}
	}()
	p := newMetaPipe(ln.Addr().String(), time.Second)
	defer p.close()
	if _, _, err := getCopy(p, "k"); err == nil || !nodeFailed(err) {
		t.Fatalf("garbage answer: %v, want an error that takes the node down", err)
	}
}

// TestMetaAnswers reads the answers memcached gives, one after another on
// one stream, and checks each maps to what the store expects.
func TestMetaAnswers(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("VA 5 c42\r\nhello\r\nEN\r\nHD\r\nNS\r\nEX\r\nNF\r\n" +
		"SERVER_ERROR object too large for cache\r\nVA 2\r\nhi\r\nbogus\r\n"))
	c := &metaCall{op: opGet}
	if err := readAnswer(br, c); err != nil || string(c.val) != "hello" || c.cas != 42 {
		t.Fatalf("VA: %q cas %d %v", c.val, c.cas, err)
	}
	if err := readAnswer(br, c); !errors.Is(err, memcache.ErrCacheMiss) || !isAnswer(err) || nodeFailed(err) {
		t.Fatalf("EN: %v", err)
	}
	c.op = opSet
	if err := readAnswer(br, c); err != nil {
		t.Fatalf("HD: %v", err)
	}
	c.op = opAdd
	if err := readAnswer(br, c); !errors.Is(err, memcache.ErrNotStored) || nodeFailed(err) {
		t.Fatalf("NS: %v", err)
	}
	c.op = opCAS
	if err := readAnswer(br, c); !errors.Is(err, memcache.ErrCASConflict) || nodeFailed(err) {
		t.Fatalf("EX: %v", err)
	}
	if err := readAnswer(br, c); !errors.Is(err, memcache.ErrCacheMiss) || nodeFailed(err) {
		t.Fatalf("NF: %v", err)
	}
	if err := readAnswer(br, c); err == nil || !isAnswer(err) || nodeFailed(err) {
		t.Fatalf("SERVER_ERROR: %v, want an answer that leaves the node up", err)
	}
	c.op = opGet
	if err := readAnswer(br, c); err != nil || string(c.val) != "hi" || c.cas != 0 {
		t.Fatalf("VA without cas: %q %d %v", c.val, c.cas, err)
	}
	if err := readAnswer(br, c); err == nil || isAnswer(err) || !nodeFailed(err) {
		t.Fatalf("garbage: %v, want an error that takes the node down", err)
	}
}

// The answers to mg <key> f: the flags, none (0), a miss, and garbage.
func TestMetaFlagsAnswers(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("HD f4294967295\r\nHD\r\nEN\r\nHD f12 X W\r\nHD f4294967296\r\n"))
	c := &metaCall{op: opFlags}
	if err := readAnswer(br, c); err != nil || c.flag != 1<<32-1 {
		t.Fatalf("HD f: %d %v", c.flag, err)
	}
	if err := readAnswer(br, c); err != nil || c.flag != 0 {
		t.Fatalf("HD: %d %v", c.flag, err)
	}
	if err := readAnswer(br, c); !errors.Is(err, memcache.ErrCacheMiss) || nodeFailed(err) {
		t.Fatalf("EN: %v", err)
	}
	if err := readAnswer(br, c); err != nil || c.flag != 12 {
		t.Fatalf("HD f X W (an item marked stale): %d %v", c.flag, err)
	}
	if err := readAnswer(br, c); err == nil || isAnswer(err) {
		t.Fatalf("flags over 32 bits: %v, want an error", err)
	}
}

// Every value the pipe stores carries its version in memcached's client
// flags (what a full copy compares, handoff.go), as another client sees
// them too; a value that is not a session carries none.
func TestMetaPipeStoresTheVersionInTheFlags(t *testing.T) {
	mc := memcachedtest.Start(t)
	p := newMetaPipe(mc.Addr, time.Second)
	defer p.close()
	raw := memcache.New(mc.Addr)
	id := AppendNewID(nil)
	for _, tc := range []struct {
		op    metaOp
		val   []byte
		flags uint32
	}{
		{opAdd, encodedSession(id, 7), 7},
		{opSet, encodedSession(id, 1<<32+9), 9},
		{opSet, []byte("not a session"), 0},
	} {
		key := []byte(DefaultKeyPrefix + string(AppendNewID(nil)))
		if err := p.store(tc.op, key, tc.val, 0, 0); err != nil {
			t.Fatal(err)
		}
		it, err := raw.Get(string(key))
		if err != nil || it.Flags != tc.flags {
			t.Fatalf("stored %q: flags %v (%v), want %d", tc.val, it, err, tc.flags)
		}
		c := newCall(opFlags, nil, 0, 0)
		p.start(c, key)
		if err := c.wait(); err != nil || c.flag != tc.flags {
			t.Fatalf("mg f of %q: %d (%v), want %d", tc.val, c.flag, err, tc.flags)
		}
		c.release()
	}
	c := newCall(opFlags, nil, 0, 0)
	p.start(c, []byte(DefaultKeyPrefix+string(AppendNewID(nil))))
	if err := c.wait(); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("mg f of a missing key: %v, want a miss", err)
	}
	c.release()
}

// FuzzMetaAnswer: whatever a node sends back, reading the answer to any
// command returns a value of the size announced, or an error, and never
// panics or reads past what it was given.
func FuzzMetaAnswer(f *testing.F) {
	for _, s := range []string{
		"VA 5 c42\r\nhello\r\n", "VA 0\r\n\r\n", "EN\r\n", "HD\r\n", "NS\r\n", "EX\r\n", "NF\r\n",
		"SERVER_ERROR object too large for cache\r\n", "CLIENT_ERROR bad data chunk\r\n",
		"VA 5 c42\r\nhel", "VA -1\r\n", "VA 99999999999999999999\r\n", "VA 3 cX\r\nabc\r\n",
		"VA 3\r\nabcde", "VA 3 c99999999999999999999\r\nabc\r\n", "HD", "\n", "VA 2 t-1 c1 k\r\nok\r\n",
		"HD f42\r\n", "HD f\r\n", "HD f7 X W Z\r\n", "HD f \r\n", "HD f99999999999\r\n", "HD c1\r\n",
	} {
		for op := range 5 {
			f.Add([]byte(s), uint8(op))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, op uint8) {
		c := &metaCall{op: metaOp(op % 5)}
		err := readAnswer(bufio.NewReader(bytes.NewReader(in)), c)
		switch {
		case err == nil && c.op == opGet:
			if !bytes.Contains(in, c.val) {
				t.Fatalf("%q: value %q not in the input", in, c.val)
			}
		case err != nil && isAnswer(err) && !errors.Is(c.err, err):
			t.Fatalf("%q: answer %v not recorded on the call (%v)", in, err, c.err)
		}
	})
}

// benchSessions writes n sessions of about size bytes to m and returns
// their IDs and one encoded value.
func benchSessions(b *testing.B, m *Memcached, n, size int) ([][]byte, []byte) {
	var s Session
	var u Update
	u.Set([]byte("pad"), bytes.Repeat([]byte("x"), size))
	u.applyTo(&s, &Session{Version: 1})
	s.Expires = time.Now().Add(time.Hour).Unix()
	val := s.AppendEncode(nil)
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = AppendNewID(nil)
		if err := m.Put(ids[i], val); err != nil {
			b.Fatal(err)
		}
	}
	return ids, val
}

func benchMemcached(b *testing.B) *Memcached {
	n1, n2 := memcachedtest.Start(b), memcachedtest.Start(b)
	m, err := NewMemcached(MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return m
}

// BenchmarkMemcachedPut is the sync write of a hot-tier proxy: 64
// concurrent writers, each a set on both replicas, 4 KiB sessions.
func BenchmarkMemcachedPut(b *testing.B) {
	m := benchMemcached(b)
	ids, val := benchSessions(b, m, 1000, 4096)
	var next atomic.Uint32
	b.SetParallelism(32) // 64 writers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
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
	benchReads(b, func(m *Memcached, id []byte, _ *Session) error {
		_, err := m.Get(id)
		return err
	})
}

// benchReads runs read over 1,000 sessions of 4 KiB from 64 concurrent
// readers, each with a session of its own to decode into.
func benchReads(b *testing.B, read func(m *Memcached, id []byte, into *Session) error) {
	m := benchMemcached(b)
	ids, _ := benchSessions(b, m, 1000, 4096)
	var next atomic.Uint32
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var s Session
		for pb.Next() {
			if err := read(m, ids[next.Add(1)%uint32(len(ids))], &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPutSharesOneConnectionPerNode: 64 requests writing at once reach
// each node over its one pipelined connection, not a connection each as
// with a pooled client.
func TestPutSharesOneConnectionPerNode(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	m, err := NewMemcached(MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}},
		ProbeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var s Session
	var u Update
	u.Set([]byte("user"), []byte("bob"))
	u.applyTo(&s, &Session{Version: 1})
	s.Expires = time.Now().Add(time.Hour).Unix()
	val := s.AppendEncode(nil)
	if err := m.Put(AppendNewID(nil), val); err != nil { // dials the pipelined connections
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
				if err := m.Put(AppendNewID(nil), val); err != nil {
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
			t.Errorf("node %d: %d connections opened for 1,280 concurrent sets, want none beyond its %d pipelined", i+1, opened, metaConns)
		}
	}
}

// totalConnections is memcached's count of connections ever accepted.
func totalConnections(t *testing.T, addr string) int {
	t.Helper()
	return int(memcachedStat(t, addr, "total_connections"))
}

// getCopy is metaPipe.get with the value copied out of the call.
func getCopy(p *metaPipe, key string) ([]byte, uint64, error) {
	c, err := p.get([]byte(key))
	val, cas := append([]byte(nil), c.val...), c.cas
	c.release()
	return val, cas, err
}

// BenchmarkMemcachedView is the cold read as the Store makes it: the
// newest copy lent to a decoder, not copied out.
func BenchmarkMemcachedView(b *testing.B) {
	benchReads(b, func(m *Memcached, id []byte, into *Session) error {
		return m.View(id, decodeInto{into})
	})
}

// decodeInto is a ValueTaker that decodes into a session.
type decodeInto struct{ s *Session }

func (d decodeInto) Take(val []byte) error { return d.s.Decode(val) }

// freeze stops srv (SIGSTOP) until the test thaws it, or ends.
func freeze(t *testing.T, srv *memcachedtest.Server) {
	t.Helper()
	srv.Freeze()
	t.Cleanup(srv.Thaw) // resuming a running process does nothing
}

// startGets starts n gets of key on p without waiting for them.
func startGets(p *metaPipe, key string, n int) []*metaCall {
	calls := make([]*metaCall, n)
	for i := range calls {
		calls[i] = newCall(opGet, nil, 0, 0)
		p.start(calls[i], []byte(key))
	}
	return calls
}

// flaggedKeys stores keys k0..k<n-1> on the node at addr, key i with
// client flags i+1, and returns them.
func flaggedKeys(t *testing.T, addr string, n int) [][]byte {
	t.Helper()
	l := newRawLoader(t, addr)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("k%d", i))
		l.setFlags(string(keys[i]), []byte("v"), uint32(i+1))
	}
	l.done()
	return keys
}
