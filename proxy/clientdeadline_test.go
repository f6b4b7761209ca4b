package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// acceptLinger returns the server side of a real loopback connection
// through a LingerListener, and the client side.
func acceptLinger(t *testing.T) (*lingerConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ll := NewLingerListener(ln)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	lc := c.(*lingerConn)
	t.Cleanup(func() { lc.TCPConn.Close() })
	return lc, client
}

// TestClientReadDeadlineLaterThanArmed: a deadline asked for later than
// the one armed (fasthttp's client_idle after its client_read) is kept
// unset; the armed one fires first and the read goes on until the one
// asked for. Without the retry the read fails at the armed deadline.
func TestClientReadDeadlineLaterThanArmed(t *testing.T) {
	c, client := acceptLinger(t)
	start := time.Now()
	c.SetReadDeadline(start.Add(40 * time.Millisecond))
	c.SetReadDeadline(start.Add(300 * time.Millisecond)) // later: not set on the socket
	if c.rd.sets != 1 {
		t.Errorf("socket deadline set %d times, want 1", c.rd.sets)
	}
	go func() {
		time.Sleep(150 * time.Millisecond)
		io.WriteString(client, "x")
	}()
	var b [8]byte
	n, err := c.Read(b[:])
	if err != nil || string(b[:n]) != "x" {
		t.Fatalf("read %q, %v after %v; want the byte sent at 150ms (asked deadline 300ms)", b[:n], err, time.Since(start))
	}
	// Nothing more comes: the read fails at the deadline asked for (and
	// its slack), never before.
	n, err = c.Read(b[:])
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != 0 {
		t.Fatalf("read %d, %v; want a timeout", n, err)
	}
	if took < 300*time.Millisecond || took > 300*time.Millisecond+300*time.Millisecond/slackFraction+150*time.Millisecond {
		t.Errorf("timed out after %v, want 300ms (up to a sixteenth later)", took)
	}
}

// TestClientReadDeadlineEarlierThanArmed: a deadline asked for earlier
// than the armed one allows (fasthttp's 1ms for a body over max_body,
// Shutdown's now) is set at once.
func TestClientReadDeadlineEarlierThanArmed(t *testing.T) {
	c, _ := acceptLinger(t)
	start := time.Now()
	c.SetReadDeadline(start.Add(10 * time.Second))
	c.SetReadDeadline(start.Add(50 * time.Millisecond))
	var b [8]byte
	_, err := c.Read(b[:])
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) || took > 2*time.Second {
		t.Fatalf("read: %v after %v, want a timeout at about 50ms", err, took)
	}
	// None at all is set as asked.
	c.SetReadDeadline(time.Time{})
	if !c.rd.armed.IsZero() {
		t.Errorf("armed %v after asking for none", c.rd.armed)
	}
}

// TestClientDeadlinesOncePerClientRead: over 200 keep-alive requests to
// the proxy's server (client_read and client_idle at their defaults,
// raw bytes on one connection) fasthttp asks for a client read deadline
// twice a request; the socket's is set once.
func TestClientDeadlinesOncePerClientRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *lingerConn, 1)
	srv := NewServer(func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }, ServerOptions{})
	go srv.Serve(&capturingListener{LingerListener: NewLingerListener(ln), conns: conns})
	t.Cleanup(func() { srv.Shutdown() })
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(client)
	const requests = 200
	for i := range requests {
		if _, err := io.WriteString(client, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		status, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
			t.Fatalf("request %d: %q, %v", i, status, err)
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
		}
		var body [2]byte
		if _, err := io.ReadFull(br, body[:]); err != nil {
			t.Fatal(err)
		}
	}
	c := <-conns
	c.rd.mu.Lock()
	sets := c.rd.sets
	c.rd.mu.Unlock()
	if sets < 1 || sets > 2 {
		t.Errorf("socket read deadline set %d times over %d requests, want once (fasthttp asks twice a request)", sets, requests)
	}
}

// capturingListener hands out each lingerConn it accepts.
type capturingListener struct {
	*LingerListener
	conns chan *lingerConn
}

func (l *capturingListener) Accept() (net.Conn, error) {
	c, err := l.LingerListener.Accept()
	if lc, ok := c.(*lingerConn); ok {
		select {
		case l.conns <- lc:
		default:
		}
	}
	return c, err
}
