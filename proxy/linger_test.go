package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// sendOversized writes head and then body in 64 KiB pieces while reading
// the proxy's answer, and returns everything read until the proxy closed.
func sendOversized(t *testing.T, base, head string, body func(w io.Writer) error) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	writeErr := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(c, head); err != nil {
			writeErr <- err
			return
		}
		writeErr <- body(c)
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("reading the answer: %v (read %q)", err, got)
	}
	<-writeErr // the proxy may stop reading once it has answered; that is fine
	return string(got)
}

func TestOversizedBodyGetsReadable413(t *testing.T) {
	a := newTestBackend(t, "A")
	p := &Proxy{Pool: newPool(t, "round_robin", nil, a.url())}
	base := startProxy(t, p, ServerOptions{MaxBody: 1 << 20})
	piece := bytes.Repeat([]byte("x"), 64<<10)
	const want413 = "HTTP/1.1 413 Request Entity Too Large\r\n"
	for i := 0; i < 5; i++ {
		got := sendOversized(t, base, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n", func(w io.Writer) error {
			for n := 0; n < 2<<20; n += len(piece) {
				if _, err := w.Write(piece); err != nil {
					return err
				}
			}
			return nil
		})
		if !strings.HasPrefix(got, want413) || !strings.HasSuffix(got, "\r\n\r\nrequest body too large\n") {
			t.Fatalf("Content-Length over max_body, try %d: got %q", i, got)
		}
	}
	if a.hits.Load() != 0 {
		t.Fatal("a body declared over max_body reached the backend")
	}
	for i := 0; i < 3; i++ {
		got := sendOversized(t, base, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", func(w io.Writer) error {
			for n := 0; n < 2<<20; n += len(piece) {
				if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(piece), piece); err != nil {
					return err
				}
			}
			_, err := io.WriteString(w, "0\r\n\r\n")
			return err
		})
		if !strings.HasPrefix(got, want413) || !strings.HasSuffix(got, "\r\n\r\nrequest body too large\n") {
			t.Fatalf("chunked body over max_body, try %d: got %q", i, got)
		}
	}
	// A chunked body streams to the backend until it goes over, so only
	// the declared lengths can be kept from it.
	if h := a.hits.Load(); h > 3 {
		t.Fatalf("backend saw %d requests; only the 3 chunked ones may reach it", h)
	}
}

// lingerServer starts a proxy behind a LingerListener with the timings
// given and returns its address.
func lingerServer(t *testing.T, timeout, idle time.Duration) string {
	t.Helper()
	a := newTestBackend(t, "A")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := &LingerListener{Listener: ln, Timeout: timeout, Idle: idle}
	srv := NewServer((&Proxy{Pool: newPool(t, "round_robin", nil, a.url())}).ServeHTTP, ServerOptions{MaxBody: 1000})
	go srv.Serve(ll)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// TestLingeringCloseIsBounded: a lingering close ends after Timeout in all
// however the client keeps sending, and after Idle once it goes silent.
// Each bound is tested with the other one far off, so that a loaded
// machine that pauses the test's client (load 10 to 50 on two cores) can
// neither end the linger early by the other bound nor make a test of one
// pass by the other.
func TestLingeringCloseIsBounded(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"

	// A client that keeps sending is cut off after Timeout in all. Idle
	// is far above the client's 10ms pauses, however late they run.
	c, err := net.Dial("tcp", lingerServer(t, 600*time.Millisecond, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, head)
	for time.Since(start) < 30*time.Second {
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err == nil || time.Since(start) < 600*time.Millisecond {
		t.Fatalf("a client sending forever: write error %v after %v, want one after 600ms", err, time.Since(start))
	}

	// A client that goes silent is cut off after Idle; Timeout is far
	// off, so only Idle can end it. The proxy's FIN comes with the 413;
	// what the client still sends is read, not reset; the close after
	// Idle shows as a reset to the next write. Idle is 1s, not less, so
	// that the two writes made while the proxy lingers come within it
	// even when the machine pauses the test between them.
	const idle = time.Second
	c2, err := net.Dial("tcp", lingerServer(t, time.Minute, idle))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, head)
	c2.SetReadDeadline(time.Now().Add(30 * time.Second))
	if got, err := io.ReadAll(c2); err != nil || !strings.Contains(string(got), " 413 ") {
		t.Fatalf("silent client: %v %q", err, got)
	}
	for i := 0; i < 2; i++ {
		if _, err := c2.Write([]byte("more")); err != nil {
			t.Fatalf("write %d while the proxy lingers: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Each probe is a write after a silence of Idle, then one to see the
	// reset; a probe that finds the proxy still lingering (its goroutine
	// may itself wait for a core) restarts its Idle, so the next waits
	// again. A close before Timeout (a minute) is Idle's.
	start = time.Now()
	for {
		time.Sleep(idle)
		c2.Write([]byte("late"))
		time.Sleep(50 * time.Millisecond)
		if _, err := c2.Write([]byte("late")); err != nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("the proxy still held a silent client's connection long after Idle")
		}
	}
}
