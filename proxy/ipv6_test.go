package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIPv6Backend: a backend on [::1] (Node's listen("localhost") can bind
// there) is dialed over IPv6. fasthttp's DialTimeout dials IPv4 only, and
// every request got 502 "invalid response from backend"; an event stream
// from it reaches the client event by event, with the default log on.
func TestIPv6Backend(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	hold := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: one\n\n"))
		w.(http.Flusher).Flush()
		<-hold
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, pipeline := range []int{0, 8} {
		p := &Proxy{Pool: newPool(t, "round_robin", nil, "http://"+ln.Addr().String()), Pipeline: pipeline}
		base := startProxy(t, p, ServerOptions{})
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
		if err != nil {
			close(hold)
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("pipeline %d: %v %v", pipeline, resp, err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: one\n" {
			t.Fatalf("pipeline %d: first event %q, %v", pipeline, line, err)
		}
		c.Close()
	}
	close(hold) // before the proxies' shutdowns, which wait for their streams
}
