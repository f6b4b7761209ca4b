package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/sessionstore"
)

// unsolicitedServe answers each request with its path, then, after the
// first answer on a connection, writes an unsolicited response 50 ms later,
// as a buggy backend does, and counts it in strays.
func unsolicitedServe(strays *atomic.Int64) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for first := true; ; first = false {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
			if first {
				time.Sleep(50 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Session-Set-Role: admin\r\nContent-Length: 4\r\n\r\nevil")
				strays.Add(1)
			}
		}
	}
}

func TestUnsolicitedResponseNeverReachesAnotherClient(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			var strays atomic.Int64
			url, conns := rawBackend(t, nil, unsolicitedServe(&strays))
			store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(store.Close)
			pool := newPool(t, "round_robin", nil, url)
			p := &Proxy{Pool: pool, Sessions: &Sessions{Store: store}}
			base := startProxy(t, p, ServerOptions{})
			for i, path := range []string{"/one", "/two", "/three", "/four"} {
				raw := rawRequest(t, base, method+" "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
				if !strings.HasPrefix(raw, "200\n") || !strings.HasSuffix(raw, "\n"+path) || strings.Contains(raw, "Set-Cookie") {
					t.Fatalf("client %d got another's response:\n%s", i+1, raw)
				}
				// The next client comes once the stray bytes are there.
				waitFor(t, "the stray response", func() bool { return strays.Load() == int64(i+1) })
			}
			if n := conns.Load(); n != 4 {
				t.Errorf("backend saw %d connections, want 4: one per request, none reused after it wrote while idle", n)
			}
			if f := pool.Backends[0].Fails(); f != 0 {
				t.Errorf("backend charged %d failures for its closed idle connections", f)
			}
		})
	}
}

func TestPOSTAfterBackendClosedIdleConn(t *testing.T) {
	// The backend answers one request per connection with keep-alive, then
	// closes it, as servers do at the end of their keep-alive timeout.
	var closed atomic.Int64
	url, conns := rawBackend(t, nil, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
		time.Sleep(20 * time.Millisecond)
		c.Close()
		closed.Add(1)
	})
	pool := newPool(t, "round_robin", nil, url)
	base := startProxy(t, &Proxy{Pool: pool}, ServerOptions{})
	for i := 0; i < 3; i++ {
		r := do(t, http.MethodPost, base+"/order", "pay=1")
		if r.status != 200 || r.body != "/order" {
			t.Fatalf("POST %d on a connection the backend closed while idle: %d %q", i, r.status, r.body)
		}
		waitFor(t, "the backend closing", func() bool { return closed.Load() == int64(i+1) })
	}
	if conns.Load() != 3 || pool.Backends[0].Fails() != 0 {
		t.Fatalf("connections %d, fails %d; want 3, 0", conns.Load(), pool.Backends[0].Fails())
	}
}

func TestTLSBackendIdleCheck(t *testing.T) {
	// httptest's certificate, served by a raw TLS backend that misbehaves.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	cfg, roots := ts.TLS.Clone(), x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ts.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var strays atomic.Int64
	url, conns := rawBackend(t, tlsListener{tls.NewListener(ln, cfg)}, unsolicitedServe(&strays))
	b, err := NewBackend(url, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	hc := newHostClient(b, transportSettings{backend: b, responseTimeout: 2 * time.Second, readIdle: 2 * time.Second, logger: slog.Default()}, time.Second, 10, DefaultMaxResponseHeader)
	hc.TLSConfig.RootCAs = roots
	for i, path := range []string{"/one", "/two", "/three"} {
		var req fasthttp.Request
		var resp fasthttp.Response
		req.SetRequestURI(url + path)
		if err := hc.DoTimeout(&req, &resp, 2*time.Second); err != nil || string(resp.Body()) != path {
			t.Fatalf("%s over TLS: %v %q", path, err, resp.Body())
		}
		waitFor(t, "the stray response", func() bool { return strays.Load() == int64(i+1) })
	}
	if conns.Load() != 3 {
		t.Fatalf("backend saw %d TLS connections, want 3", conns.Load())
	}
}

// TestIdleCheckOnlyAfterIdle: a connection taken again within
// idlePeekAfter of its answer is not peeked (the lever of issue #30: the
// peek is a system call per request that finds nothing on a healthy
// connection); one idle longer is, and is refused for the bytes its peer
// wrote to it.
func TestIdleCheckOnlyAfterIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn := newIdleCheckConn(c)
	if _, err := io.WriteString(peer, "stray"); err != nil {
		t.Fatal(err)
	}
	ic := idleCheckOf(conn)
	waitFor(t, "the stray bytes", func() bool { return ic.stale() })

	ic.answered = true // an answer was read, just now
	answeredAt(conn, time.Now())
	if checkBeforeUse(conn) {
		t.Fatal("a connection answered less than idlePeekAfter ago was peeked")
	}
	ic.answered = true
	answeredAt(conn, time.Now().Add(-2*idlePeekAfter))
	if !checkBeforeUse(conn) {
		t.Fatal("a connection idle for longer than idlePeekAfter, with stray bytes, was not refused")
	}
	ic.answered = true // an answer never marked (a streamed body) is peeked
	if !checkBeforeUse(conn) {
		t.Fatal("a connection whose answer was not marked was not peeked")
	}
}
