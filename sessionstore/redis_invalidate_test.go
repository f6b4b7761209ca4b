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

// refusingGets starts a real redis-server behind a relay that, while
// refuse is set, ends every connection that carries a GET: reads fail,
// scripted writes (EVALSHA) go through, as right after a failover when a
// read times out on a connection being dialled again.
func refusingGets(t *testing.T) (relayAddr string, refuse *atomic.Bool) {
	srv := redistest.Start(t, redistest.Options{})
	refuse = new(atomic.Bool)
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
			if refuse.Load() && bytes.Contains(buf[:n], []byte("*2\r\n$3\r\nGET\r\n")) {
				return // the read fails; the connection is dialled anew
			}
			if _, err := u.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	return relay.Addr, refuse
}

// TestInvalidateWhenTheReadFails is the fault harness's finding R2
// (docs/guarantees.md): an invalidation whose read of the session failed
// (a timeout right after a Redis failover) wrote its tombstone at version
// 1, which the conditional write takes as already superseded by the
// session held, answering success: the logout was answered as done and
// the session stayed readable through every proxy. The read's failure
// must fail the invalidation (503, the client retries) instead. The
// proxies reach Redis through a relay that ends any connection carrying
// a GET while armed, so that reads fail and scripted writes do not; no
// hot tier, which would hold a copy of its own (the keeping of changes
// during an outage is another matter, finding R1).
func TestInvalidateWhenTheReadFails(t *testing.T) {
	addr, refuseGets := refusingGets(t)
	s := newRedisStore(t, Options{Redis: RedisOptions{Addrs: []string{addr}}})
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

// TestRotateWhenTheReadFails is the fault harness's finding R3
// (docs/guarantees.md): a rotation whose read of the session failed went
// on as if the session were missing when the hot tier did not hold it
// (another proxy made it, or the hot tier was flushed when the connection
// to Redis closed in a failover): ErrNotFound, which the proxy answers by
// expiring the client's cookie, while the session stayed valid under the
// old ID it was to leave (login's rotation against session fixation).
// The read's failure must fail the rotation instead (503). With the hot
// tier and wait_replicas 0, the defaults, where a copy in the hot tier
// may stand in for the store's.
func TestRotateWhenTheReadFails(t *testing.T) {
	addr, refuseGets := refusingGets(t)
	o := Options{Redis: RedisOptions{Addrs: []string{addr}}, LocalSize: 1 << 20}
	a, b := newRedisStore(t, o), newRedisStore(t, o)
	id := AppendNewID(nil)
	set(t, b, id, true, "user", "alice") // a's hot tier does not hold it

	refuseGets.Store(true)
	u := Update{Rotate: true}
	err := a.change(id, &u, false, AppendNewID(nil), nil)
	refuseGets.Store(false)
	if errors.Is(err, ErrNotFound) {
		t.Fatalf("rotation while the session could not be read: %v (the proxy expires the cookie of a session that is there)", err)
	}
	if err == nil {
		t.Fatal("rotation succeeded although the session could not be read")
	}
	mustLoad(t, b, id, "user=alice") // not rotated: still there, for a retry
}
