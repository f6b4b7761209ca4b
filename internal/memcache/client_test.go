package memcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestMetaPipeConcurrent: many callers at once, their commands batched on
// a few connections; each reads back its own value, and memcached's text
// protocol reads what the meta commands wrote.
func TestMetaPipeConcurrent(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", g)
			for i := range 50 {
				val := bytes.Repeat([]byte{byte('a' + g%26)}, 1+(g*i)%5000)
				if err := p.Store(OpSet, []byte(key), val, 0, 0, 60); err != nil {
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
	if val, _ := textGet(t, srv.Addr, "k3"); len(val) == 0 || val[0] != 'd' {
		t.Fatalf("get k3 in the text protocol reads %q", val)
	}
	if _, _, err := getCopy(p, "absent"); !errors.Is(err, ErrCacheMiss) || !IsAnswer(err) {
		t.Fatalf("absent key: %v, want a miss", err)
	}
}

// TestMetaPipeCASAndAdd: add stores only where nothing is, CAS only over
// the version read, and their refusals are answers that leave the node up.
func TestMetaPipeCASAndAdd(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	if err := p.Store(OpAdd, []byte("k"), []byte("one"), 0, 0, 60); err != nil {
		t.Fatalf("add to an empty key: %v", err)
	}
	if err := p.Store(OpAdd, []byte("k"), []byte("two"), 0, 0, 60); !errors.Is(err, ErrNotStored) || !IsAnswer(err) {
		t.Fatalf("add over a value: %v, want not stored", err)
	}
	val, cas, err := getCopy(p, "k")
	if err != nil || string(val) != "one" || cas == 0 {
		t.Fatalf("get: %q cas %d %v", val, cas, err)
	}
	if err := p.Store(OpCAS, []byte("k"), []byte("three"), cas, 0, 60); err != nil {
		t.Fatalf("CAS with the id read: %v", err)
	}
	if err := p.Store(OpCAS, []byte("k"), []byte("four"), cas, 0, 60); !errors.Is(err, ErrCASConflict) || !IsAnswer(err) {
		t.Fatalf("CAS with a stale id: %v, want a conflict", err)
	}
	if err := p.Store(OpCAS, []byte("gone"), []byte("x"), cas, 0, 60); !errors.Is(err, ErrCacheMiss) || !IsAnswer(err) {
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
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	err := p.Store(OpSet, []byte("big"), make([]byte, 2<<20), 0, 0, 60)
	if err == nil || !IsAnswer(err) {
		t.Fatalf("2 MiB value: %v, want a refusal that leaves the node up", err)
	}
	for range 2 * len(p.conns) {
		if err := p.Store(OpSet, []byte("small"), []byte("v"), 0, 0, 60); err != nil {
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
	p := New(srv.Addr, 200*time.Millisecond, 0)
	defer p.Close()
	if err := p.Store(OpSet, []byte("k"), []byte("v"), 0, 0, 60); err != nil {
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
		if err == nil || IsAnswer(err) {
			t.Fatalf("get %d on a frozen node: %v, want a failure", i, err)
		}
	}
	p.Close()
	srv.Stop()
	if _, _, err := getCopy(p, "k"); err == nil || IsAnswer(err) {
		t.Fatalf("stopped node: %v, want a failure", err)
	}
	srv.Restart()
	for range 2 * len(p.conns) {
		if err := p.Store(OpSet, []byte("k"), []byte("w"), 0, 0, 60); err != nil {
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
	p := New(ln.Addr().String(), time.Second, 0)
	defer p.Close()
	if _, _, err := getCopy(p, "k"); err == nil || IsAnswer(err) {
		t.Fatalf("garbage answer: %v, want an error that takes the node down", err)
	}
}

// TestMetaAnswers reads the answers memcached gives, one after another on
// one stream, and checks each maps to what the store expects.
func TestMetaAnswers(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("VA 5 c42\r\nhello\r\nEN\r\nHD\r\nNS\r\nEX\r\nNF\r\n" +
		"SERVER_ERROR object too large for cache\r\nVA 2\r\nhi\r\nbogus\r\n"))
	c := &Call{op: OpGet}
	if err := readAnswer(br, c); err != nil || string(c.val) != "hello" || c.cas != 42 {
		t.Fatalf("VA: %q cas %d %v", c.val, c.cas, err)
	}
	if err := readAnswer(br, c); !errors.Is(err, ErrCacheMiss) || !IsAnswer(err) {
		t.Fatalf("EN: %v", err)
	}
	c.op = OpSet
	if err := readAnswer(br, c); err != nil {
		t.Fatalf("HD: %v", err)
	}
	c.op = OpAdd
	if err := readAnswer(br, c); !errors.Is(err, ErrNotStored) || !IsAnswer(err) {
		t.Fatalf("NS: %v", err)
	}
	c.op = OpCAS
	if err := readAnswer(br, c); !errors.Is(err, ErrCASConflict) || !IsAnswer(err) {
		t.Fatalf("EX: %v", err)
	}
	if err := readAnswer(br, c); !errors.Is(err, ErrCacheMiss) || !IsAnswer(err) {
		t.Fatalf("NF: %v", err)
	}
	if err := readAnswer(br, c); err == nil || !IsAnswer(err) {
		t.Fatalf("SERVER_ERROR: %v, want an answer that leaves the node up", err)
	}
	c.op = OpGet
	if err := readAnswer(br, c); err != nil || string(c.val) != "hi" || c.cas != 0 {
		t.Fatalf("VA without cas: %q %d %v", c.val, c.cas, err)
	}
	if err := readAnswer(br, c); err == nil || IsAnswer(err) {
		t.Fatalf("garbage: %v, want an error that takes the node down", err)
	}
}

// The answers to mg <key> f: the flags, none (0), a miss, and garbage.
func TestMetaFlagsAnswers(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("HD f4294967295\r\nHD\r\nEN\r\nHD f12 X W\r\nHD f4294967296\r\n"))
	c := &Call{op: OpFlags}
	if err := readAnswer(br, c); err != nil || c.flag != 1<<32-1 {
		t.Fatalf("HD f: %d %v", c.flag, err)
	}
	if err := readAnswer(br, c); err != nil || c.flag != 0 {
		t.Fatalf("HD: %d %v", c.flag, err)
	}
	if err := readAnswer(br, c); !errors.Is(err, ErrCacheMiss) || !IsAnswer(err) {
		t.Fatalf("EN: %v", err)
	}
	if err := readAnswer(br, c); err != nil || c.flag != 12 {
		t.Fatalf("HD f X W (an item marked stale): %d %v", c.flag, err)
	}
	if err := readAnswer(br, c); err == nil || IsAnswer(err) {
		t.Fatalf("flags over 32 bits: %v, want an error", err)
	}
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
		c := &Call{op: Op(op % 5)}
		err := readAnswer(bufio.NewReader(bytes.NewReader(in)), c)
		switch {
		case err == nil && c.op == OpGet:
			if !bytes.Contains(in, c.val) {
				t.Fatalf("%q: value %q not in the input", in, c.val)
			}
		case err != nil && IsAnswer(err) && !errors.Is(c.err, err):
			t.Fatalf("%q: answer %v not recorded on the call (%v)", in, err, c.err)
		}
	})
}

// getCopy is Client.Get with the value copied out of the call.
func getCopy(p *Client, key string) ([]byte, uint64, error) {
	c, err := p.Get([]byte(key))
	val, cas := append([]byte(nil), c.val...), c.cas
	c.Release()
	return val, cas, err
}

// startGets starts n gets of key on p without waiting for them.
func startGets(p *Client, key string, n int) []*Call {
	calls := make([]*Call, n)
	for i := range calls {
		calls[i] = NewCall(OpGet, nil, 0, 0, 0)
		p.Start(calls[i], []byte(key))
	}
	return calls
}

// flaggedKeys stores keys k0..k<n-1> on the server at addr, key i with
// client flags i+1, and returns them.
func flaggedKeys(t *testing.T, addr string, n int) [][]byte {
	t.Helper()
	p := New(addr, 5*time.Second, 0)
	defer p.Close()
	keys := make([][]byte, n)
	calls := make([]*Call, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("k%d", i))
		calls[i] = NewCall(OpSet, []byte("v"), 0, uint32(i+1), 3600)
	}
	p.StartAll(calls, keys)
	for _, c := range calls {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	releaseCalls(calls)
	return keys
}

// flagCalls returns n pooled calls asking for a key's flags.
func flagCalls(n int) []*Call {
	calls := make([]*Call, n)
	for i := range calls {
		calls[i] = NewCall(OpFlags, nil, 0, 0, 0)
	}
	return calls
}

func releaseCalls(calls []*Call) {
	for _, c := range calls {
		c.Release()
	}
}

// freeze stops srv (SIGSTOP) until the test thaws it, or ends.
func freeze(t *testing.T, srv *memcachedtest.Server) {
	t.Helper()
	srv.Freeze()
	t.Cleanup(srv.Thaw) // resuming a running process does nothing
}

// textGet reads key from the server at addr in memcached's text protocol
// (get), on a connection of its own: what another client reads of what a
// Client stored. A missing key reads as nil.
func textGet(t *testing.T, addr, key string) (val []byte, flags uint32) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "get %s\r\n", key)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line == "END\r\n" {
		return nil, 0
	}
	var k string
	var size int
	if _, err := fmt.Sscanf(line, "VALUE %s %d %d", &k, &flags, &size); err != nil {
		t.Fatalf("get %s: %q", key, line)
	}
	val = make([]byte, size+2)
	if _, err := io.ReadFull(br, val); err != nil {
		t.Fatal(err)
	}
	return val[:size], flags
}

// Wait answers again, at once and the same, once a call is answered: a
// caller that waited for a batch reads each call's answer later.
func TestWaitTwice(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	if err := p.Store(OpSet, []byte("k"), []byte("v"), 0, 0, 60); err != nil {
		t.Fatal(err)
	}
	hit, miss := NewCall(OpGet, nil, 0, 0, 0), NewCall(OpGet, nil, 0, 0, 0)
	p.StartAll([]*Call{hit, miss}, [][]byte{[]byte("k"), []byte("absent")})
	for range 2 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := hit.Wait(); err != nil || string(hit.Value()) != "v" {
				t.Errorf("hit: %q %v", hit.Value(), err)
			}
			if err := miss.Wait(); !errors.Is(err, ErrCacheMiss) {
				t.Errorf("miss: %v", err)
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a second Wait blocks")
		}
	}
	hit.Release()
	miss.Release()
}
