package memcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestQuietBatchEachItsOwnAnswer: one batch, on real memcached, of quiet
// sets that succeed and fail in every way a store can, a store over the
// item limit (not quiet) and a get: each call reads its own answer, never
// a neighbour's, and what was stored is stored.
func TestQuietBatchEachItsOwnAnswer(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	for round := range 20 {
		pre := fmt.Sprintf("r%d-", round)
		k := func(s string) []byte { return []byte(pre + s) }
		steps := []struct {
			call *Call
			key  []byte
			want error
		}{
			{NewCall(OpSet, []byte("one"), 0, 0, 60), k("a"), nil},
			{NewCall(OpSet, make([]byte, 2<<20), 0, 0, 60), k("big"), ErrServer},
			{NewCall(OpSet, []byte("two"), 0, 0, 60), k("b"), nil},
			{NewCall(OpCAS, []byte("x"), 1<<40, 0, 60), k("a"), ErrCASConflict},
			{NewCall(OpAdd, []byte("x"), 0, 0, 60), k("b"), ErrNotStored},
			{NewCall(OpCAS, []byte("x"), 1<<40, 0, 60), k("missing"), ErrCacheMiss},
			{NewCall(OpGet, nil, 0, 0, 0), k("a"), nil},
			{NewCall(OpAdd, []byte("three"), 0, 0, 60), k("c"), nil},
			{NewCall(OpSet, []byte("four"), 0, 0, 60), k("d"), nil},
		}
		calls, keys := make([]*Call, len(steps)), make([][]byte, len(steps))
		for i, s := range steps {
			calls[i], keys[i] = s.call, s.key
		}
		if !calls[0].quietFor(keys[0]) || calls[1].quietFor(keys[1]) {
			t.Fatal("small sets are not quiet, or a 2 MiB one is")
		}
		p.StartAll(calls, keys)
		for i, s := range steps {
			if err := s.call.Wait(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
				t.Fatalf("round %d, step %d (%s): %v, want %v", round, i, s.key, err, s.want)
			}
		}
		if v := calls[6].Value(); string(v) != "one" {
			t.Fatalf("get in the batch read %q", v)
		}
		releaseCalls(calls)
		for key, want := range map[string]string{"a": "one", "b": "two", "c": "three", "d": "four", "big": ""} {
			if val, _ := textGet(t, srv.Addr, pre+key); string(val) != want {
				t.Fatalf("round %d: %s holds %q, want %q", round, key, val, want)
			}
		}
	}
}

// quietFor reports whether c's store of key is sent quiet.
func (c *Call) quietFor(key []byte) bool { return c.op.stores() && len(key)+len(c.val) <= quietMax }

// TestQuietRefusalsUnderLoad: concurrent writers on one connection, their
// quiet sets batched together, some of them refused (a stale CAS, an add
// over a value): each writer is told its own refusal, and only its own.
func TestQuietRefusalsUnderLoad(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, 2*time.Second, 0)
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			key := []byte(fmt.Sprintf("w%d", g))
			if err := p.Store(OpSet, key, []byte("v"), 0, 0, 60); err != nil {
				errs <- err
				return
			}
			for i := range 200 {
				var err, want error
				switch (g + i) % 3 {
				case 0:
					err = p.Store(OpSet, key, []byte("v"), 0, 0, 60)
				case 1:
					err, want = p.Store(OpCAS, key, []byte("v"), 1<<40, 0, 60), ErrCASConflict
				case 2:
					err, want = p.Store(OpAdd, key, []byte("v"), 0, 0, 60), ErrNotStored
				}
				if !errors.Is(err, want) || (want == nil) != (err == nil) {
					errs <- fmt.Errorf("writer %d, write %d: %v, want %v", g, i, err, want)
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
}

// fakeMeta is a memcached that answers by key, for what real memcached
// does not do on demand: a quiet set refused out of memory. It records
// every command line it reads. Keys: "oom*" draw SERVER_ERROR out of
// memory, "big*" SERVER_ERROR too large, "ns*" NS; other stores are
// stored; gets miss.
type fakeMeta struct {
	mu   sync.Mutex
	cmds []string
}

func (f *fakeMeta) serve(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.conn(c)
		}
	}()
	return ln.Addr().String()
}

func (f *fakeMeta) conn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		f.mu.Lock()
		f.cmds = append(f.cmds, line)
		f.mu.Unlock()
		fs := strings.Fields(line)
		var answer string
		switch fs[0] {
		case "mn":
			answer = "MN"
		case "mg":
			answer = "EN"
		case "ms":
			size, _ := strconv.Atoi(fs[2])
			io.CopyN(io.Discard, br, int64(size)+2)
			quiet, tok := false, ""
			for _, fl := range fs[3:] {
				quiet = quiet || fl == "q"
				if fl[0] == 'O' {
					tok = " " + fl
				}
			}
			switch key := fs[1]; {
			case strings.HasPrefix(key, "oom"):
				answer = "SERVER_ERROR out of memory storing object"
			case strings.HasPrefix(key, "big"):
				answer = "SERVER_ERROR object too large for cache"
			case strings.HasPrefix(key, "ns"):
				answer = "NS" + tok
			case !quiet:
				answer = "HD"
			}
		}
		if answer != "" {
			c.Write([]byte(answer + "\r\n"))
		}
	}
}

func (f *fakeMeta) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.cmds))
	for i, c := range f.cmds {
		out[i] = strings.Fields(c)[0]
		if strings.Contains(c, " q O") {
			out[i] += "q"
		}
	}
	f.cmds = f.cmds[:0]
	return out
}

// TestQuietAttribution, over the wire byte for byte: a batch of quiet
// sets ends with one no-op, a refusal goes to the set its token names, a
// store over quietMax is sent with an answer and after a no-op that ends
// the quiet sets before it (its token-less error is its own), and a
// token-less SERVER_ERROR goes to the one quiet set waiting, or, memcached
// not saying which, to each of several.
func TestQuietAttribution(t *testing.T) {
	var f fakeMeta
	p := New(f.serve(t), time.Second, 0)
	defer p.Close()
	set := func(val []byte) *Call { return NewCall(OpSet, val, 0, 0, 60) }
	big := make([]byte, quietMax+1)
	for _, tc := range []struct {
		name string
		keys []string
		vals [][]byte
		want []error
		cmds string
	}{
		{"refusal by token", []string{"a", "ns1", "b", "c"}, nil, []error{nil, ErrNotStored, nil, nil}, "msq msq msq msq mn"},
		{"get between", []string{"a", "ns1", "get", "b"}, nil, []error{nil, ErrNotStored, ErrCacheMiss, nil}, "msq msq mg msq mn"},
		{"one waiting out of memory", []string{"a", "get", "oom"}, nil, []error{nil, ErrCacheMiss, ErrServer}, "msq mg msq mn"},
		{"several waiting out of memory", []string{"oom", "a"}, nil, []error{ErrServer, ErrServer}, "msq msq mn"},
		{"large store after quiet ones", []string{"a", "big", "b"}, [][]byte{nil, big, nil}, []error{nil, ErrServer, nil}, "msq mn ms msq mn"},
		{"large store stored", []string{"a", "large", "ns"}, [][]byte{nil, big, nil}, []error{nil, nil, ErrNotStored}, "msq mn ms msq mn"},
	} {
		calls, keys := make([]*Call, len(tc.keys)), make([][]byte, len(tc.keys))
		for i, k := range tc.keys {
			keys[i] = []byte(k)
			switch {
			case k == "get":
				calls[i] = NewCall(OpGet, nil, 0, 0, 0)
			case tc.vals != nil && tc.vals[i] != nil:
				calls[i] = set(tc.vals[i])
			default:
				calls[i] = set([]byte("v"))
			}
		}
		p.StartAll(calls, keys)
		for i, c := range calls {
			err := c.Wait()
			if !errors.Is(err, tc.want[i]) || (tc.want[i] == nil) != (err == nil) {
				t.Errorf("%s: %s: %v, want %v", tc.name, tc.keys[i], err, tc.want[i])
			}
		}
		releaseCalls(calls)
		if got := strings.Join(f.commands(), " "); got != tc.cmds {
			t.Errorf("%s: sent %q, want %q", tc.name, got, tc.cmds)
		}
	}
}

// FuzzQuietAnswers: whatever a node answers to a batch of quiet sets,
// gets and no-ops, every call is answered exactly once, and a quiet set
// is told a refusal (NS, EX, NF) only when the answer named its token.
func FuzzQuietAnswers(f *testing.F) {
	for _, tc := range []struct{ script, kinds string }{
		{"MN\r\n", "qqn"},
		{"EX O1\r\nMN\r\n", "qqqn"},
		{"NS O0\r\nEN\r\nMN\r\n", "qgqn"},
		{"SERVER_ERROR out of memory storing object\r\nMN\r\n", "qqn"},
		{"SERVER_ERROR object too large for cache\r\nMN\r\n", "qn"},
		{"VA 2 c5\r\nhi\r\nNF O2\r\nMN\r\n", "qgqn"},
		{"NS O7\r\nMN\r\n", "qn"},
		{"NS O1\r\nNS O0\r\nMN\r\n", "qqn"},
		{"HD\r\nMN\r\n", "sqn"},
		{"MN\r\nHD\r\n", "qns"},
		{"EN\r\nMN\r\nEN\r\n", "gqng"},
	} {
		f.Add([]byte(tc.script), []byte(tc.kinds))
	}
	f.Fuzz(func(t *testing.T, script, kinds []byte) {
		if len(kinds) > 64 {
			kinds = kinds[:64]
		}
		end, _ := net.Pipe()
		l := &link{conn: end, inflight: make(chan *Call, len(kinds))}
		var calls []*Call
		tok := uint32(0)
		for _, k := range kinds {
			var c *Call
			switch k % 4 {
			case 0:
				c = &Call{op: OpSet, quiet: true, token: tok}
				tok++
			case 1:
				c = &Call{op: OpGet}
			case 2:
				c = &Call{op: opNoop}
			case 3:
				c = &Call{op: OpSet}
			}
			c.done = make(chan struct{}, 2)
			if c.op != opNoop {
				calls = append(calls, c)
			}
			l.inflight <- c
		}
		close(l.inflight)
		l.serve(&answers{br: bufio.NewReader(bytes.NewReader(script))})
		for i, c := range calls {
			if n := len(c.done); n != 1 {
				t.Fatalf("call %d answered %d times", i, n)
			}
			if c.quiet && (errors.Is(c.err, ErrNotStored) || errors.Is(c.err, ErrCASConflict) || errors.Is(c.err, ErrCacheMiss)) &&
				!bytes.Contains(script, fmt.Appendf(nil, " O%d\r", c.token)) && !bytes.Contains(script, fmt.Appendf(nil, " O%d ", c.token)) {
				t.Fatalf("quiet call %d (token %d) told %v, its token not in %q", i, c.token, c.err, script)
			}
		}
	})
}
