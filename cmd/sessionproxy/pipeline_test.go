package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/rawtcp"
)

// pipelineBackend answers each request with its path, on raw sockets, and
// reports whether a request ever came while the one before it on its
// connection was unanswered: whether the proxy pipelined to it.
func pipelineBackend(t *testing.T) (addr string, overlapped *atomic.Bool) {
	t.Helper()
	overlapped = new(atomic.Bool)
	srv := rawtcp.Serve(t, func(c net.Conn) {
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
	})
	return srv.Addr, overlapped
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

// ownerBackend is a backend on raw sockets for requests /c/<client>/<n>:
// it answers "<client>/<n>|<owner>", owner being the session attribute
// it was sent, and sets the attribute owner to the client. With buggy
// set, it sends more than it owes, all in the write of the answer: a
// HEAD's answer carries a body, a 304 too, so does the 204 that answers
// ?empty, and ?extra adds bytes past a Content-Length body; the bodies it should not send are whole answers
// with their own session instruction (owner STRAY-<client>), or the
// token of the request. A request that closes its connection (HTTP/1.0)
// gets Connection: close and the connection is closed, as servers do.
func ownerBackend(t *testing.T, buggy bool) string {
	t.Helper()
	srv := rawtcp.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			parts := strings.Split(r.URL.Path, "/") // "", "c", client, n
			if len(parts) != 4 {
				io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			client, token := parts[2], parts[2]+"/"+parts[3]
			body := token + "|" + r.Header.Get("X-Session-Attr-Owner")
			stray := fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Session-Set-Owner: STRAY-%s\r\nContent-Length: %d\r\n\r\nSTRAY %s", client, len("STRAY ")+len(token), token)
			var out strings.Builder
			status := "200 OK"
			if r.Header.Get("If-None-Match") != "" {
				status = "304 Not Modified"
			} else if r.URL.Query().Has("empty") {
				status = "204 No Content"
			}
			fmt.Fprintf(&out, "HTTP/1.1 %s\r\nX-Session-Set-Owner: %s\r\n", status, client)
			if r.Close {
				out.WriteString("Connection: close\r\n")
			}
			switch {
			case status == "204 No Content" && !buggy:
				out.WriteString("\r\n")
			case r.Method == http.MethodHead || status != "200 OK":
				// A HEAD's or a 304's Content-Length is that of
				// the 200 it stands for: allowed, and not a body.
				fmt.Fprintf(&out, "Content-Length: %d\r\n\r\n", len(stray))
				if buggy {
					out.WriteString(stray)
				}
			default:
				fmt.Fprintf(&out, "Content-Length: %d\r\n\r\n%s", len(body), body)
				if buggy && r.URL.Query().Has("extra") {
					out.WriteString(token + "|STRAY")
				}
			}
			io.WriteString(c, out.String())
			if r.Close {
				return
			}
		}
	})
	return srv.Addr
}

// rawClient is a client of the proxy that writes its requests as bytes on
// one keep-alive connection, dialled again when the proxy closes it.
type rawClient struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

// do sends raw and reads the answer, whose body is read whole.
func (c *rawClient) do(raw, method string) (*http.Response, string, error) {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			return nil, "", err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Close || err != nil {
		c.close()
	}
	return resp, string(body), err
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// sessionTraffic runs clients HTTP/1.1 clients, each with a session of its
// own, on raw keep-alive connections, and http10 HTTP/1.0 clients without
// one, for rounds requests each, through the proxy at addr to an
// ownerBackend. An HTTP/1.1 client sends, in turn, GET, GET ?extra, HEAD,
// GET If-None-Match, a small POST and GET ?empty. It fails t when a client
// gets another's token, or a session attribute that is not its own, or
// an answer other than the one expected or 502; it returns how many
// answers were not the 200 (304, 204) expected.
func sessionTraffic(t *testing.T, addr string, clients, http10, rounds int) (failed int64) {
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range clients {
		wg.Go(func() {
			id := fmt.Sprintf("u%d", g)
			c := &rawClient{addr: addr}
			defer c.close()
			cookie := ""
			for i := range rounds {
				path := fmt.Sprintf("/c/%s/%d", id, i)
				method, extra, want := "GET", "", 200
				switch i % 6 {
				case 1:
					path += "?extra"
				case 2:
					method = "HEAD"
				case 3:
					extra, want = "If-None-Match: \"v1\"\r\n", 304
				case 4:
					method, extra = "POST", "Content-Length: 2\r\n\r\nhi"
				case 5:
					path, want = path+"?empty", 204
				}
				// The owner is set by the answer that started the session;
				// before it, none.
				owner := ""
				if cookie != "" {
					owner = id
					extra = "Cookie: SPSESSIONID=" + cookie + "\r\n" + extra
				}
				if !strings.HasSuffix(extra, "hi") {
					extra += "\r\n"
				}
				raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: app\r\n%s", method, path, extra)
				resp, body, err := c.do(raw, method)
				if err != nil {
					t.Errorf("%s %s: %v", method, path, err)
					c.close()
					bad.Add(1)
					continue
				}
				if resp.StatusCode != want {
					if resp.StatusCode != 502 {
						t.Errorf("%s %s: %d %q", method, path, resp.StatusCode, body)
					}
					bad.Add(1)
					continue
				}
				if own := resp.Header.Get("X-Session-Set-Owner"); own != "" {
					t.Errorf("%s %s: a session instruction reached the client: %q", method, path, own)
				}
				for _, ck := range resp.Cookies() {
					if ck.Name == "SPSESSIONID" {
						if cookie != "" && ck.Value != cookie {
							t.Errorf("%s %s: session cookie changed", method, path)
						}
						cookie = ck.Value
					}
				}
				if method == "HEAD" || want != 200 {
					if body != "" {
						t.Errorf("%s %s: body %q", method, path, body)
					}
					continue
				}
				if wantBody := path[:strings.IndexByte(path+"?", '?')][len("/c/"):] + "|" + owner; body != wantBody {
					t.Errorf("%s %s: answered %q, want %q", method, path, body, wantBody)
				}
			}
		})
	}
	for g := range http10 {
		wg.Go(func() {
			for i := range rounds {
				path := fmt.Sprintf("/c/old%d/%d", g, i)
				c := &rawClient{addr: addr}
				resp, body, err := c.do("GET "+path+" HTTP/1.0\r\nHost: app\r\n\r\n", "GET")
				c.close()
				if err != nil {
					t.Errorf("HTTP/1.0 GET %s: %v", path, err)
					bad.Add(1)
					continue
				}
				if resp.StatusCode != 200 {
					t.Errorf("HTTP/1.0 GET %s: %d %q", path, resp.StatusCode, body)
					bad.Add(1)
					continue
				}
				if want := path[len("/c/"):] + "|"; body != want {
					t.Errorf("HTTP/1.0 GET %s: answered %q, want %q", path, body, want)
				}
			}
		})
	}
	wg.Wait()
	return bad.Load()
}

// pipelineSessionConfig is the shipped defaults (the access log on, text)
// with pipeline: 8 and a memcached node for the sessions.
const pipelineSessionConfig = `listen: "{{listen}}"
pipeline: 8
backends: [{url: "http://%s"}]
session:
  memcached:
    nodes: ["n1:%s"]
`

// TestPipelineStrayBytesNeverAnswerOthers: a backend that sends bodies on
// HEAD and 304 answers, themselves whole answers with a session
// instruction, and bytes past a Content-Length body, under many clients
// on a pipelined upstream: no client ever gets another's token, and no
// stray answer's session instruction reaches any session. Some GETs
// near stray bytes may fail (502), but most are answered; the POSTs
// never share a pipelined connection (holdApart) and, in a run, were
// never among the failures.
func TestPipelineStrayBytesNeverAnswerOthers(t *testing.T) {
	mc := memcachedtest.Start(t)
	p := startProcess(t, fmt.Sprintf(pipelineSessionConfig, ownerBackend(t, true), mc.Addr))
	const clients, rounds = 24, 60
	failed := sessionTraffic(t, p.addr, clients, 0, rounds)
	// One request in three leaves bytes on a pipelined connection:
	// what was written behind it may fail.
	if failed > clients*rounds/2 {
		t.Fatalf("%d of %d requests failed", failed, clients*rounds)
	}
	if !strings.Contains(p.stderr(), "backend sent bytes beyond the answers it owed") {
		t.Fatal("no stray bytes were seen on a pipelined connection: the test did not test")
	}
	t.Logf("%d of %d requests behind stray bytes failed", failed, clients*rounds)
}

// TestPipelineHTTP10ClientsDoNotShare: HTTP/1.0 clients, whose requests
// the backend answers by closing its connection, mixed with HTTP/1.1
// clients on a pipelined upstream: nobody gets an error, since an
// HTTP/1.0 client's request never shares a connection.
func TestPipelineHTTP10ClientsDoNotShare(t *testing.T) {
	mc := memcachedtest.Start(t)
	p := startProcess(t, fmt.Sprintf(pipelineSessionConfig, ownerBackend(t, false), mc.Addr))
	if failed := sessionTraffic(t, p.addr, 16, 8, 60); failed != 0 {
		t.Fatalf("%d requests failed", failed)
	}
}
