// Package rawtcp is the byte-level TCP server and client that tests share:
// a fake backend or store that answers what a real server never would
// (stray bytes, garbage, a head without its body), and a client that
// writes a request as the literal bytes an attacker's socket would.
// Behaviour is tested against real servers; this is for the corner cases.
package rawtcp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server runs a handler on every connection it accepts, each in a
// goroutine of its own that closes the connection when the handler
// returns. When the test ends it stops accepting and closes the
// connections still open (a proxy keeps idle ones), which ends a handler
// blocked on its connection. It does not wait for handlers: one may be
// blocked on a channel that a later cleanup closes.
type Server struct {
	// Addr is the host:port the server listens on.
	Addr string
	// Accepted counts the connections accepted so far.
	Accepted atomic.Int64

	ln     net.Listener
	mu     sync.Mutex // protects conns and closed
	conns  []net.Conn
	closed bool
}

// Serve starts a Server on a free loopback port.
func Serve(t testing.TB, handle func(c net.Conn)) *Server {
	t.Helper()
	return ServeOn(t, Listen(t), handle)
}

// ServeOn starts a Server on ln, for a listener that does more than
// accept (TLS, the PROXY protocol). ln is closed when the test ends.
func ServeOn(t testing.TB, ln net.Listener, handle func(c net.Conn)) *Server {
	t.Helper()
	return ServeNumbered(t, ln, func(_ int, c net.Conn) { handle(c) })
}

// ServeNumbered is ServeOn with a handler that is also told which
// connection it serves: 1 for the first accepted, 2 for the next, in
// the order they were accepted.
func ServeNumbered(t testing.TB, ln net.Listener, handle func(n int, c net.Conn)) *Server {
	t.Helper()
	s := &Server{Addr: ln.Addr().String(), ln: ln}
	go s.accept(handle)
	t.Cleanup(s.close)
	return s
}

// URL returns "http://" and Addr: the server as a backend.
func (s *Server) URL() string { return "http://" + s.Addr }

func (s *Server) accept(handle func(int, net.Conn)) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := int(s.Accepted.Add(1))
		s.mu.Lock()
		if s.closed { // accepted as the test ended: close's loop has run
			c.Close()
		}
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go func() {
			defer c.Close()
			handle(n, c)
		}()
	}
}

func (s *Server) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// Listen returns a listener on a free loopback port, closed when the
// test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects to addr with a deadline 5 seconds away, so that a test
// waiting on a server that never answers fails instead of hanging. The
// caller closes the connection.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// Exchange writes raw to addr on a new connection and reads one HTTP
// response, body included, within 5 seconds.
func Exchange(t testing.TB, addr, raw string) (*http.Response, string) {
	t.Helper()
	c := Dial(t, addr)
	defer c.Close()
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// ReadHead reads the head of a request or response from br byte for byte,
// up to and including the blank line that ends it: the lines as the peer
// wrote them, in order and as spelt, where a parser would merge them.
func ReadHead(br *bufio.Reader) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return head.String(), err
		}
		head.WriteString(line)
		if line == "\r\n" {
			return head.String(), nil
		}
	}
}
