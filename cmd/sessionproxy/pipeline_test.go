package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pipelineBackend answers each request with its path, on raw sockets, and
// reports whether a request ever came while the one before it on its
// connection was unanswered: whether the proxy pipelined to it.
func pipelineBackend(t *testing.T) (addr string, overlapped *atomic.Bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	overlapped = new(atomic.Bool)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r.Body)
					c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
					if _, err := br.Peek(1); err == nil {
						overlapped.Store(true)
					}
					c.SetReadDeadline(time.Time{})
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
				}
			}()
		}
	}()
	return ln.Addr().String(), overlapped
}

// TestPipelineConfig: pipeline on the top level pipelines to the default
// pool, upstreams.<name>.pipeline to that upstream, and an upstream
// without it is not pipelined.
func TestPipelineConfig(t *testing.T) {
	def, defOverlap := pipelineBackend(t)
	api, apiOverlap := pipelineBackend(t)
	plain, plainOverlap := pipelineBackend(t)
	p := startProcess(t, fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
pipeline: 8
backends: [{url: "http://%s"}]
upstreams:
  api: {pipeline: 4, backends: [{url: "http://%s"}]}
  plain: {backends: [{url: "http://%s"}]}
routes:
  - {match: {path: "/api/"}, upstream: api}
  - {match: {path: "/plain/"}, upstream: plain}
`, def, api, plain))
	base := "http://" + p.addr
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, prefix := range []string{"/", "/api/", "/plain/"} {
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				for i := range 25 {
					path := fmt.Sprintf("%sg%d-%d", prefix, g, i)
					if body := mustGet(t, c, base+path); body != path {
						t.Errorf("%s answered %q", path, body)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	if !defOverlap.Load() || !apiOverlap.Load() {
		t.Fatalf("pipelined: default %v, api %v; want both", defOverlap.Load(), apiOverlap.Load())
	}
	if plainOverlap.Load() {
		t.Fatal("an upstream without pipeline got a request while another was unanswered on its connection")
	}
}
