package sessionstore

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"sessionproxy/internal/rawtcp"
	"sessionproxy/internal/redistest"
)

// TestInvalidateWhenTheReadFails is the fault harness's finding D
// (docs/guarantees.md): an invalidation whose read of the session failed
// (a timeout right after a Redis failover) wrote its tombstone at version
// 1, which the conditional write takes as already superseded by the
// session held, answering success: the logout was answered as done and
// the session stayed readable through every proxy. The read's failure
// must fail the invalidation (503, the client retries) instead. The
// proxies reach Redis through a relay that ends any connection carrying
// a GET while armed, so that reads fail and scripted writes do not; no
// hot tier, which would hold a copy of its own (the keeping of changes
// during an outage is another matter, finding C).
func TestInvalidateWhenTheReadFails(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var refuseGets atomic.Bool
	relay := rawtcp.Serve(t, func(c net.Conn) {
		defer c.Close()
		u, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			return
		}
		defer u.Close()
		go io.Copy(c, u)
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if refuseGets.Load() && bytes.Contains(buf[:n], []byte("*2\r\n$3\r\nGET\r\n")) {
				return // the read fails; the connection is dialled anew
			}
			if _, err := u.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	s := newRedisStore(t, Options{Redis: RedisOptions{Addrs: []string{relay.Addr}}})
	id := AppendNewID(nil)
	set(t, s, id, true, "user", "alice")
	set(t, s, id, false, "user", "bob")

	refuseGets.Store(true)
	err := s.Delete(id)
	refuseGets.Store(false)
	if err == nil {
		// Answered as done: the session must be gone.
		if got, lerr := load(t, s, id); !errors.Is(lerr, ErrNotFound) {
			t.Fatalf("Delete answered success but the session is still there: Load = %q, %v", got, lerr)
		}
	} else if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Delete = %v, want ErrUnavailable", err)
	}
	// Redis reachable again, the invalidation goes through.
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if got, err := load(t, s, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: Load = %q, %v", got, err)
	}
}
