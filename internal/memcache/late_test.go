package memcache

import (
	"net"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// TestLateReaderReadsAnAnswerAlreadyThere: a link's reader whose deadline
// has passed by the time it reads (the process was not scheduled for
// longer than the timeout, and its deadline timer was seen before the
// answer) still reads the answer that is in the socket's buffer. It
// failed the call with an i/o timeout, and the store counted a healthy
// node down: under load, a proxy counted every node down at once
// (docs/guarantees.md). A server that does not answer still fails it.
func TestLateReaderReadsAnAnswerAlreadyThere(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	if err := p.Store(OpSet, []byte("k"), []byte("v"), 0, 0, 60); err != nil {
		t.Fatal(err)
	}
	p.Close()

	ask := func() (*link, *Call) {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		l := &link{conn: c, inflight: make(chan *Call, 1)}
		call := NewCall(OpGet, nil, 0, 0, 0)
		if _, err := c.Write(call.encode(nil, []byte("k"))); err != nil {
			t.Fatal(err)
		}
		l.inflight <- call
		close(l.inflight)
		return l, call
	}

	// The answer is in the buffer before the reader runs; a timeout in
	// the past is a deadline already expired when it reads, as after a
	// stall longer than the timeout.
	l, call := ask()
	time.Sleep(50 * time.Millisecond)
	l.read(-time.Second)
	if err := call.Wait(); err != nil || string(call.Value()) != "v" {
		t.Fatalf("an answer already there, read past the deadline: %v %q, want v", err, call.Value())
	}
	call.Release()

	// A frozen server's silence is still a timeout.
	srv.Freeze()
	defer srv.Thaw()
	l, call = ask()
	start := time.Now()
	l.read(-time.Second)
	if err := call.Wait(); err == nil || IsAnswer(err) {
		t.Fatalf("a frozen server, read past the deadline: %v, want a timeout", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a frozen server's read took %v past its deadline", took)
	}
	call.Release()
}
