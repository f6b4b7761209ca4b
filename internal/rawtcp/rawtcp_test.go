package rawtcp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestServeNumbersAndCloses: connections are numbered in the order
// accepted, Exchange reads a raw answer, and a connection still open when
// the test ends is closed.
func TestServeNumbersAndCloses(t *testing.T) {
	held := make(chan net.Conn, 1)
	var srv *Server
	t.Run("serve", func(t *testing.T) {
		srv = ServeNumbered(t, Listen(t), func(n int, c net.Conn) {
			c.Read(make([]byte, 512))
			if n == 3 {
				io.Copy(io.Discard, c) // held open until the test ends
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n%d", n)
		})
		for want := 1; want <= 2; want++ {
			resp, body := Exchange(t, srv.Addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 200 || body != fmt.Sprint(want) {
				t.Fatalf("connection %d: %d %q", want, resp.StatusCode, body)
			}
		}
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "hello")
		held <- c
		for srv.Accepted.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
	})
	c := <-held
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Closed with "hello" unread, the server's side may answer with a
	// reset rather than an end of stream: either says it closed.
	if n, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the test that started it ended: read %d, %v; want EOF or a reset", n, err)
	}
	if _, err := net.Dial("tcp", srv.Addr); err == nil {
		t.Fatal("the listener still accepts after the test ended")
	}
}
