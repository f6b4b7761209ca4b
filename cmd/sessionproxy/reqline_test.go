package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sessionproxy/internal/rawtcp"
	"sessionproxy/internal/testutil"
)

// rawBackend is a TCP server that records the head of every request it
// gets byte for byte (request line and headers) and answers 200 "ok".
type rawBackend struct {
	name string
	addr string
	mu   sync.Mutex
	got  []string
}

func newRawBackend(t *testing.T, name string) *rawBackend {
	t.Helper()
	b := &rawBackend{name: name}
	b.addr = rawtcp.Serve(t, b.serve).Addr
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		head, err := rawtcp.ReadHead(br)
		if err != nil {
			return
		}
		length := 0
		for _, line := range strings.Split(head, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
			return
		}
		b.mu.Lock()
		b.got = append(b.got, head)
		b.mu.Unlock()
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Backend: %s\r\nContent-Length: 2\r\n\r\nok", b.name)
	}
}

// take returns the heads received since the last call.
func (b *rawBackend) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.got
	b.got = nil
	return got
}

// reqlineSite runs the binary with the shipped defaults (access log on)
// over three recording backends: "default", "api" behind /api/ with
// rewrite_prefix /v2/, and "hosted" for Host example.com; pipeline 0 is
// the default.
func reqlineSite(t *testing.T, pipeline int, extra string) (p *process, def, api, hosted *rawBackend) {
	def, api, hosted = newRawBackend(t, "default"), newRawBackend(t, "api"), newRawBackend(t, "hosted")
	conf := fmt.Sprintf(`listen: "{{listen}}"
pipeline: %[1]d
backends:
  - url: "http://%[2]s"
upstreams:
  api:
    pipeline: %[1]d
    backends: [{url: "http://%[3]s"}]
  hosted:
    backends: [{url: "http://%[4]s"}]
routes:
  - match: {path: "/api/"}
    upstream: api
    rewrite_prefix: "/v2/"
  - match: {host: "example.com"}
    upstream: hosted
`, pipeline, def.addr, api.addr, hosted.addr) + extra
	return startProcess(t, conf), def, api, hosted
}

// TestRequestLineThroughBinary sends each case as raw bytes and checks
// the status and the exact request line and headers each backend got.
func TestRequestLineThroughBinary(t *testing.T) {
	// The default, and the pipelined transport, which writes requests
	// its own way.
	for _, pipeline := range []int{0, 8} {
		t.Run(fmt.Sprintf("pipeline=%d", pipeline), func(t *testing.T) { testRequestLine(t, pipeline) })
	}
}

func testRequestLine(t *testing.T, pipeline int) {
	p, def, api, hosted := reqlineSite(t, pipeline, "")
	backends := []*rawBackend{def, api, hosted}
	for _, tc := range []struct {
		name     string
		raw      string
		status   int
		backend  *rawBackend // nil: no backend may see it
		line     string      // the request line the backend got
		host     string      // its Host line, if not empty
		noHeader string      // a header it must not get
	}{
		{name: "encoded dot-dot climbs", raw: "GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "..;x climbs", raw: "GET /a/..;x/..;y/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "plain climb", raw: "GET /../x HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "escaped slash hiding ..", raw: "GET /api/..%2F..%2Fetc HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "bad escape", raw: "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{
			name: "..;x is .. for routing, the target goes on raw",
			raw:  "GET /api/..;x/secret HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "GET /api/..;x/secret HTTP/1.1",
		},
		{
			name: "// resolved for routing, rewritten",
			raw:  "GET //api//x HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: api, line: "GET /v2/x HTTP/1.1",
		},
		{
			name: "double-encoded decoded once",
			raw:  "GET /%252e%252e/x HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "GET /%252e%252e/x HTTP/1.1",
		},
		{
			name: "raw target byte for byte",
			raw:  "GET /a%2Fb/%7euser//c%20d;p=1/./e/%2e%2e/f?q=%2F&x=a+b&y=%zz HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "GET /a%2Fb/%7euser//c%20d;p=1/./e/%2e%2e/f?q=%2F&x=a+b&y=%zz HTTP/1.1",
		},
		{
			name: "// target that fasthttp reads as a host",
			raw:  "GET //x/http://y/z?q HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "GET //x/http://y/z?q HTTP/1.1",
		},
		{
			name: "empty query",
			raw:  "GET /q? HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "GET /q? HTTP/1.1",
		},
		{
			name: "rewrite_prefix escapes only what is not pchar",
			raw:  "GET /api/a%2Fb/c%20d/%7E%21/caf%C3%A9;jsessionid=1/%3F/x?q=%2F HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: api, line: "GET /v2/a%2Fb/c%20d/~!/caf%C3%A9/%3F/x?q=%2F HTTP/1.1",
		},
		{
			// Backends decode %2F (net/http, PHP behind nginx): /api%2Fx
			// is their /api/x, and slipping past the /api/ route to
			// another upstream would dodge whatever that route is for.
			name: "an escaped slash matches its route",
			raw:  "GET /api%2fx/y%2Fz HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: api, line: "GET /v2/x/y%2Fz HTTP/1.1",
		},
		{
			name: "trailing dot in Host",
			raw:  "GET /h HTTP/1.1\r\nHost: EXAMPLE.com.:8080\r\n\r\n", status: 200,
			backend: hosted, line: "GET /h HTTP/1.1", host: "EXAMPLE.com.:8080",
		},
		{
			name: "absolute form: its host routes and is Host",
			raw:  "GET http://Example.com/abs?z=1 HTTP/1.1\r\nHost: other.test\r\n\r\n", status: 200,
			backend: hosted, line: "GET /abs?z=1 HTTP/1.1", host: "example.com",
		},
		{
			name: "absolute form wins over a routed Host",
			raw:  "GET http://other.test:81/x HTTP/1.1\r\nHost: example.com\r\n\r\n", status: 200,
			backend: def, line: "GET /x HTTP/1.1", host: "other.test:81",
		},
		{
			name: "HTTP/1.0 goes on as HTTP/1.1",
			raw:  "GET /ten HTTP/1.0\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "GET /ten HTTP/1.1",
		},
		{
			name: "OPTIONS *",
			raw:  "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", status: 200,
			backend: def, line: "OPTIONS * HTTP/1.1",
		},
		{name: "target fasthttp's URI parser refuses", raw: "GET //^://?q HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "absolute form without a host", raw: "GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "HTTP/2.0", raw: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", status: 505},
		{name: "HTTP/9.9", raw: "GET / HTTP/9.9\r\nHost: x\r\n\r\n", status: 505},
		{name: "HTTP/1.2", raw: "GET / HTTP/1.2\r\nHost: x\r\n\r\n", status: 505},
		{name: "garbage version", raw: "GET / HTTP/1.1x\r\nHost: x\r\n\r\n", status: 400},
		{name: "fragment", raw: "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
	} {
		resp, body := rawtcp.Exchange(t, p.addr, tc.raw)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d %q, want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		for _, b := range backends {
			got := b.take()
			if b != tc.backend {
				if len(got) != 0 {
					t.Errorf("%s: backend %s got %q", tc.name, b.name, got)
				}
				continue
			}
			if len(got) != 1 {
				t.Errorf("%s: backend %s got %d requests, want 1", tc.name, b.name, len(got))
				continue
			}
			if line, _, _ := strings.Cut(got[0], "\r\n"); line != tc.line {
				t.Errorf("%s: backend got %q, want %q", tc.name, line, tc.line)
			}
			if tc.host != "" && countLines(got[0], "Host: "+tc.host) != 1 {
				t.Errorf("%s: backend got\n%s\nwant one Host: %s", tc.name, got[0], tc.host)
			}
			if countLines(got[0], "Host:") != 1 {
				t.Errorf("%s: backend got\n%s\nwant one Host line", tc.name, got[0])
			}
		}
	}
}

// countLines counts the header lines of head that start with prefix, in
// any case.
func countLines(head, prefix string) int {
	n := 0
	for _, l := range strings.Split(head, "\r\n") {
		if len(l) >= len(prefix) && strings.EqualFold(l[:len(prefix)], prefix) {
			n++
		}
	}
	return n
}

// TestHTTP10KeepsItsSemantics: an HTTP/1.0 client without keep-alive gets
// its connection closed, one with keep-alive keeps it, though the backend
// saw HTTP/1.1 both times.
func TestHTTP10KeepsItsSemantics(t *testing.T) {
	p, def, _, _ := reqlineSite(t, 0, "")
	resp, _ := rawtcp.Exchange(t, p.addr, "GET /a HTTP/1.0\r\nHost: x\r\n\r\n")
	if !resp.Close {
		t.Errorf("HTTP/1.0 without keep-alive: connection not closed")
	}
	c := rawtcp.Dial(t, p.addr)
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		io.WriteString(c, "GET /b HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close || resp.ProtoMinor != 1 && resp.Header.Get("Connection") != "keep-alive" {
			t.Errorf("keep-alive request %d: Close %v, Connection %q", i, resp.Close, resp.Header.Get("Connection"))
		}
	}
	for _, h := range def.take() {
		if !strings.Contains(h, " HTTP/1.1\r\n") || countLines(h, "Connection: close") != 0 {
			t.Errorf("backend got\n%s", h)
		}
	}
}

// TestExpectContinueNotForwarded: the proxy answers 100 Continue itself;
// the backend never sees the expectation.
func TestExpectContinueNotForwarded(t *testing.T) {
	p, def, _, _ := reqlineSite(t, 0, "")
	c := rawtcp.Dial(t, p.addr)
	defer c.Close()
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first answer %q, %v; want 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue followed by %q", blank)
	}
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("final answer: %v %v", resp, err)
	}
	got := def.take()
	if len(got) != 1 || countLines(got[0], "Expect:") != 0 {
		t.Errorf("backend got %q, want one request without Expect", got)
	}
}

// TestRedirectReadsTheRequestLine: with redirect_to_https an absolute-form
// target is redirected to its own host and path (not Host + the whole
// target), a trailing-dot or ported Host keeps its name, and a request
// without any host gets 400.
func TestRedirectReadsTheRequestLine(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "site", "site.test")
	tlsAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(tlsAddr)
	p, def, _, _ := reqlineSite(t, 0, "listen_tls: '"+tlsAddr+"'\ntls:\n  certificates: [{cert: '"+cert+"', key: '"+key+"'}]\nredirect_to_https: true\n")
	testutil.WaitFor(t, 10*time.Second, "the TLS listener", func() bool {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for _, tc := range []struct {
		raw      string
		status   int
		location string
	}{
		{"GET http://evil.com/x?y=1 HTTP/1.1\r\nHost: site.test\r\n\r\n", 308, "https://evil.com:" + port + "/x?y=1"},
		{"GET http://evil.com HTTP/1.1\r\nHost: site.test\r\n\r\n", 308, "https://evil.com:" + port + "/"},
		{"GET /a/%2e%2e/b?c HTTP/1.1\r\nHost: site.test:80\r\n\r\n", 308, "https://site.test:" + port + "/a/%2e%2e/b?c"},
		{"GET /x HTTP/1.0\r\n\r\n", 400, ""},
		{"GET /x HTTP/1.1\r\nHost: :80\r\n\r\n", 400, ""},
		{"GET /../x HTTP/1.1\r\nHost: site.test\r\n\r\n", 400, ""},
	} {
		resp, body := rawtcp.Exchange(t, p.addr, tc.raw)
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%q: %d Location %q %q, want %d %q", tc.raw, resp.StatusCode, resp.Header.Get("Location"), body, tc.status, tc.location)
		}
	}
	if got := def.take(); len(got) != 0 {
		t.Errorf("backend got %q", got)
	}
}

// TestHTTP10GetsNoChunks: a backend's chunked answer, streamed, reaches an
// HTTP/1.0 client without Transfer-Encoding (keep-alive or not); an
// HTTP/1.1 client gets the same body.
func TestHTTP10GetsNoChunks(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part1-")
		w.(http.Flusher).Flush()
		time.Sleep(100 * time.Millisecond) // the proxy streams what it has
		io.WriteString(w, "part2")
	}))
	t.Cleanup(be.Close)
	p := startProcess(t, "listen: '{{listen}}'\nbackends:\n  - url: '"+be.URL+"'\n")
	for _, req := range []string{
		"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		resp, body := rawtcp.Exchange(t, p.addr, req)
		if resp.StatusCode != 200 || body != "part1-part2" {
			t.Errorf("%q: %d %q", req, resp.StatusCode, body)
		}
		if strings.Contains(req, "HTTP/1.0") && len(resp.TransferEncoding) != 0 {
			t.Errorf("%q: Transfer-Encoding %v to an HTTP/1.0 client", req, resp.TransferEncoding)
		}
	}
}

// TestHTTP10StreamLogged: the access-log line of a streamed answer of
// unknown length to an HTTP/1.0 client (sent close-delimited on the
// hijacked connection) describes that request: it was written once
// fasthttp had reset the request and response, as GET / 200 with no
// request ID, whatever the client asked and the backend answered.
func TestHTTP10StreamLogged(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "part1-")
		w.(http.Flusher).Flush() // no Content-Length: chunked to the proxy
		io.WriteString(w, "part2")
	}))
	t.Cleanup(be.Close)
	p := startProcess(t, "listen: '{{listen}}'\nbackends:\n  - url: '"+be.URL+"'\n")
	resp, body := rawtcp.Exchange(t, p.addr, "POST /h10/stream?q=1 HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if resp.StatusCode != 404 || body != "part1-part2" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Request-Id")
	waitLog(t, p, "method=POST path=/h10/stream status=404 bytes=11 ")
	waitLog(t, p, "request_id="+id+" ")
}
