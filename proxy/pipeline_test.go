package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
	"sessionproxy/internal/apptest"
	"sessionproxy/internal/rawtcp"
)

// sockBackend is an HTTP backend written on raw sockets, so that a test
// decides what each connection reads and writes, and when.
type sockBackend struct {
	srv   *rawtcp.Server
	conns *atomic.Int64 // connections accepted
}

// newSockBackend serves each connection with serve; n counts connections
// from 1.
func newSockBackend(t testing.TB, serve func(n int, c net.Conn, br *bufio.Reader)) *sockBackend {
	t.Helper()
	s := rawtcp.ServeNumbered(t, rawtcp.Listen(t), func(n int, c net.Conn) { serve(n, c, bufio.NewReader(c)) })
	return &sockBackend{srv: s, conns: &s.Accepted}
}

func (b *sockBackend) url() string { return b.srv.URL() }

// readReq reads one request and its body; nil at the end of the
// connection.
func readReq(br *bufio.Reader) (*http.Request, string) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, ""
	}
	body, _ := io.ReadAll(r.Body)
	return r, string(body)
}

func answer(c net.Conn, body string, hdr ...string) {
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s", strings.Join(hdr, ""), len(body), body)
}

// pipelinedProxy starts a proxy pipelining up to 8 requests per
// connection to url; configure may change its pipeline transport.
func pipelinedProxy(t *testing.T, p *Proxy, configure func(*pipeline)) string {
	t.Helper()
	p.Pipeline = 8
	p.once.Do(p.init)
	pl, ok := p.clients[0].Transport.(*pipeline)
	if !ok {
		t.Fatalf("transport is %T, want *pipeline", p.clients[0].Transport)
	}
	if configure != nil {
		configure(pl)
	}
	return startProxy(t, p, ServerOptions{})
}

// oneConn queues every request on one connection, however long its head
// waits, so that a test can put requests behind others.
func oneConn(pl *pipeline) { pl.minConns, pl.slowHead = 1, time.Hour }

// asyncGet starts a GET whose body the test reads itself; the channel
// yields the response, or is closed (nil) after the error was reported.
func asyncGet(t *testing.T, url string) <-chan *http.Response {
	out := make(chan *http.Response, 1)
	go func() {
		resp, err := client.Get(url)
		if err != nil {
			t.Error(err)
			close(out)
			return
		}
		out <- resp
	}()
	return out
}

// asyncGet runs do in the background.
func asyncDo(t *testing.T, method, url, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if body == "" {
			req.Body = nil
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			ch <- result{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- result{resp.StatusCode, resp.Header, string(b)}
	}()
	return ch
}

// TestPipelineAnswersInOrder: many clients at once over a fast backend
// get each their own answer, with the requests sent back to back (the
// backend finds the next request already read while it answers one) and
// session headers stripped as on the ordinary path.
func TestPipelineAnswersInOrder(t *testing.T) {
	var overlapped atomic.Bool
	be := newSockBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			// Another request written before this one is answered.
			c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
			if _, err := br.Peek(1); err == nil {
				overlapped.Store(true)
			}
			c.SetReadDeadline(time.Time{})
			answer(c, r.URL.Path, "X-Session-Set-User: mallory\r\n")
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, nil)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 25 {
				path := fmt.Sprintf("/g%d/%d", g, i)
				r := get(t, base+path)
				if r.status != 200 || r.body != path {
					t.Errorf("%s: %d %q", path, r.status, r.body)
				}
				if r.header.Get("X-Session-Set-User") != "" {
					t.Errorf("%s: X-Session-Set-User reached the client", path)
				}
			}
		})
	}
	wg.Wait()
	if !overlapped.Load() {
		t.Fatal("no request was sent while another was unanswered on its connection: nothing was pipelined")
	}
	if n := be.conns.Load(); n > 16 {
		t.Fatalf("%d backend connections for 16 clients", n)
	}
}

// TestPipelineStreamedRequestBodyGoesAlone: a request whose body streams
// from the client takes a connection of its own, and so does one with a
// small whole body (holdApart): neither ever shares the pipelined
// connection the GETs share.
func TestPipelineStreamedRequestBodyGoesAlone(t *testing.T) {
	var mu sync.Mutex
	connOf := map[string]int{}
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, body := readReq(br)
			if r == nil {
				return
			}
			mu.Lock()
			connOf[r.URL.Path] = n
			mu.Unlock()
			answer(c, fmt.Sprint(len(body)))
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, nil)
	big := strings.Repeat("b", 200<<10)
	if r := do(t, "POST", base+"/big", big); r.status != 200 || r.body != fmt.Sprint(len(big)) {
		t.Fatalf("streamed POST: %d %q", r.status, r.body)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/after1", ""}, {"POST", "/small", "tiny"}, {"GET", "/after2", ""},
	} {
		if r := do(t, tc.method, base+tc.path, tc.body); r.status != 200 || r.body != fmt.Sprint(len(tc.body)) {
			t.Fatalf("%s %s: %d %q", tc.method, tc.path, r.status, r.body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if connOf["/after2"] != connOf["/after1"] {
		t.Fatalf("the GETs were not pipelined on one connection: %v", connOf)
	}
	if connOf["/big"] == connOf["/after1"] {
		t.Fatalf("the streamed body went on the pipelined connection: %v", connOf)
	}
	if connOf["/small"] == connOf["/after1"] {
		t.Fatalf("the small body went on the pipelined connection: %v", connOf)
	}
}

// TestPipelineStreamedResponse: a large response is relayed as it comes;
// no request is queued behind it while it streams, and one written behind
// it before its head came waits its turn and is answered after it.
func TestPipelineStreamedResponse(t *testing.T) {
	const size = 1 << 20
	readBig, readBehind, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			if r.URL.Path != "/big" {
				answer(c, r.URL.Path)
				continue
			}
			close(readBig)
			r2, _ := readReq(br) // written behind /big on the same connection
			if r2 == nil {
				return
			}
			close(readBehind)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			c.Write(make([]byte, 64<<10))
			<-release
			c.Write(make([]byte, size-64<<10))
			answer(c, r2.URL.Path)
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, oneConn)
	bigResp := asyncGet(t, base+"/big")
	<-readBig
	behind := asyncDo(t, "GET", base+"/behind", "")
	<-readBehind
	resp := <-bigResp
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatalf("the first 64 KiB, all the backend sent yet, did not come through: %v", err)
	}
	// The connection is streaming: a new request goes on another.
	if r := get(t, base+"/other"); r.status != 200 || r.body != "/other" {
		t.Fatalf("request during the stream: %d %q", r.status, r.body)
	}
	select {
	case r := <-behind:
		t.Fatalf("the request behind the stream was answered before it: %+v", r)
	default:
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != size-64<<10 {
		t.Fatalf("rest of the body: %d bytes, %v", len(rest), err)
	}
	if r := <-behind; r.status != 200 || r.body != "/behind" {
		t.Fatalf("request behind the stream: %d %q", r.status, r.body)
	}
}

// TestPipelineLongStreamNotIdle: a connection relaying a streamed answer
// has no request in flight once the head was handed on, but is not idle:
// a request that comes pipelineMaxIdle later, which closes idle
// connections, leaves the download alone.
func TestPipelineLongStreamNotIdle(t *testing.T) {
	const size = 1 << 20
	release := make(chan struct{})
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			if r.URL.Path != "/big" {
				answer(c, r.URL.Path)
				continue
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			c.Write(make([]byte, 64<<10))
			<-release
			c.Write(make([]byte, size-64<<10))
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, nil)
	resp := <-asyncGet(t, base+"/big")
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatalf("the first 64 KiB: %v", err)
	}
	time.Sleep(pipelineMaxIdle + 500*time.Millisecond)
	if r := get(t, base+"/other"); r.status != 200 || r.body != "/other" {
		t.Fatalf("request during the stream: %d %q", r.status, r.body)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != size-64<<10 {
		t.Fatalf("rest of the body, %v into it: %d bytes, %v", pipelineMaxIdle, len(rest), err)
	}
}

// queuedBehind sends GET /a, /b and /c so that the backend's first
// connection reads them in that order before it answers, and returns
// their results. first is how that connection answers; later connections
// answer normally. While they are queued, and before first runs, a POST
// is sent: it must not go behind them (holdApart), but on another
// connection, and be answered there at once.
func queuedBehind(t *testing.T, p *Proxy, h *balancer.Health, first func(c net.Conn)) (a, b, c result, be *sockBackend) {
	t.Helper()
	read, posted := make(chan string), make(chan struct{})
	be = newSockBackend(t, func(n int, conn net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			if n > 1 {
				answer(conn, "again "+r.URL.Path)
				continue
			}
			read <- r.URL.Path
			if r.URL.Path == "/c" {
				<-posted
				first(conn)
				return
			}
		}
	})
	p.Pool = newPool(t, "round_robin", h, be.url())
	base := pipelinedProxy(t, p, oneConn)
	ra := asyncDo(t, "GET", base+"/a", "")
	<-read
	rb := asyncDo(t, "GET", base+"/b", "")
	<-read
	rc := asyncDo(t, "GET", base+"/c", "")
	<-read
	// The connection holds three unanswered requests: the POST must not
	// wait behind them.
	select {
	case post := <-asyncDo(t, "POST", base+"/post", "x"):
		if post.status != 200 || post.body != "again /post" {
			t.Errorf("POST /post while GETs were queued: %d %q, want it answered on another connection", post.status, post.body)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("POST /post while GETs were queued: no answer in 10s (queued behind them?)")
	}
	close(posted)
	return <-ra, <-rb, <-rc, be
}

// chargeLogged returns a Proxy whose pool logs "backend down" at the
// first failure charged to a backend.
func chargeLogged() (*balancer.Health, *apptest.Output) {
	log := &apptest.Output{}
	return &balancer.Health{MaxFails: 1, FailTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(log, nil))}, log
}

// TestPipelineUntilCloseFailsBehind: a response without a length ends
// its connection: the requests written behind it are sent again (a POST
// never is behind it: queuedBehind), and the backend, which did nothing
// wrong, is not charged.
func TestPipelineUntilCloseFailsBehind(t *testing.T) {
	h, log := chargeLogged()
	p := &Proxy{}
	a, b, c, _ := queuedBehind(t, p, h, func(conn net.Conn) {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\n\r\npartial")
	})
	if a.status != 200 || a.body != "partial" {
		t.Fatalf("/a: %d %q", a.status, a.body)
	}
	if b.status != 200 || b.body != "again /b" {
		t.Fatalf("GET /b behind an until-close answer: %d %q, want it sent again", b.status, b.body)
	}
	if c.status != 200 || c.body != "again /c" {
		t.Fatalf("GET /c behind an until-close answer: %d %q, want it sent again", c.status, c.body)
	}
	if strings.Contains(log.String(), "backend down") {
		t.Fatalf("backend charged a failure:\n%s", log.String())
	}
}

// TestPipelineBrokenConnection: a backend that closes a pipelined
// connection after an answer (a keep-alive limit) costs the requests
// behind nothing: they are sent again, and the backend is not charged.
// One that closes it in the middle of an answer fails the request it
// broke under, which is charged to it once, and the GET behind is sent
// again.
func TestPipelineBrokenConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   func(conn net.Conn)
		bStatus int
		bBody   string
		charged bool
	}{
		{"after an answer", func(conn net.Conn) { answer(conn, "a") }, 200, "again /b", false},
		{"mid-answer", func(conn net.Conn) {
			answer(conn, "a")
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n/b")
		}, 502, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, log := chargeLogged()
			p := &Proxy{}
			a, b, c, _ := queuedBehind(t, p, h, tc.first)
			if a.status != 200 || a.body != "a" {
				t.Fatalf("/a: %d %q", a.status, a.body)
			}
			if b.status != tc.bStatus || tc.bBody != "" && b.body != tc.bBody {
				t.Fatalf("GET /b on a broken connection: %d %q, want %d %q", b.status, b.body, tc.bStatus, tc.bBody)
			}
			if c.status != 200 || c.body != "again /c" {
				t.Fatalf("GET /c on a broken connection: %d %q, want it sent again", c.status, c.body)
			}
			if charged := strings.Contains(log.String(), "backend down"); charged != tc.charged {
				t.Fatalf("backend charged: %v, want %v:\n%s", charged, tc.charged, log.String())
			}
		})
	}
}

// TestPipelineResponseTimeout: timeouts.response runs for each request
// from when the answer before it was read, so a backend that answers
// each in time is not timed out by the queue, and one that never answers
// gets 504.
func TestPipelineResponseTimeout(t *testing.T) {
	// Each answer comes step after the one before, within the timeout,
	// but the second comes 2*step after it was written, past it. The
	// margins are wide for a loaded machine.
	const step, timeout = 1200 * time.Millisecond, 2 * time.Second
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	p := &Proxy{Settings: Settings{ResponseTimeout: timeout}}
	start := time.Now()
	a, b, c, _ := queuedBehind(t, p, nil, func(conn net.Conn) {
		time.Sleep(step)
		answer(conn, "a")
		time.Sleep(step)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
		<-hold // /c is never answered
	})
	if a.status != 200 || b.status != 200 || b.body != "b" {
		t.Fatalf("/a %d, /b %d %q: want both answered, %v after the first", a.status, b.status, b.body, 2*step)
	}
	if c.status != 504 {
		t.Fatalf("/c never answered: %d %q, want 504", c.status, c.body)
	}
	if el := time.Since(start); el < 2*step+timeout {
		t.Fatalf("504 after %v, before its own response timeout ran out", el)
	}
}

// TestPipelineUnsolicitedBytes: bytes a backend sends that answer no
// request end the connection, whether they come with an answer or while
// the connection is idle; the next request gets its own answer.
func TestPipelineUnsolicitedBytes(t *testing.T) {
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
	for _, idle := range []bool{false, true} {
		t.Run(fmt.Sprintf("idle=%v", idle), func(t *testing.T) {
			sentEvil := make(chan struct{})
			be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
				for {
					r, _ := readReq(br)
					if r == nil {
						return
					}
					if n > 1 {
						answer(c, r.URL.Path)
						continue
					}
					if idle {
						answer(c, r.URL.Path)
						time.Sleep(50 * time.Millisecond)
						io.WriteString(c, evil)
					} else {
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/a"+evil)
					}
					close(sentEvil)
				}
			})
			p := &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}
			base := pipelinedProxy(t, p, nil)
			if r := get(t, base+"/a"); r.body != "/a" {
				t.Fatalf("/a: %d %q", r.status, r.body)
			}
			<-sentEvil
			time.Sleep(50 * time.Millisecond) // the bytes reach the proxy's socket
			for _, path := range []string{"/b", "/c"} {
				if r := get(t, base+path); r.status != 200 || r.body != path {
					t.Fatalf("%s after unsolicited bytes: %d %q", path, r.status, r.body)
				}
			}
		})
	}
}

// TestPipelineInflight: requests waiting on one pipelined connection each
// count as in flight to their backend, which least_conn balances on.
func TestPipelineInflight(t *testing.T) {
	read, release := make(chan struct{}, 3), make(chan struct{})
	be := newSockBackend(t, func(_ int, c net.Conn, br *bufio.Reader) {
		var paths []string
		for len(paths) < 3 {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			paths = append(paths, r.URL.Path)
			read <- struct{}{}
		}
		<-release
		for _, p := range paths {
			answer(c, p)
		}
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			answer(c, r.URL.Path)
		}
	})
	p := &Proxy{Pool: newPool(t, "least_conn", nil, be.url())}
	base := pipelinedProxy(t, p, oneConn)
	var results []<-chan result
	for i := range 3 {
		results = append(results, asyncDo(t, "GET", fmt.Sprintf("%s/%d", base, i), ""))
		<-read
	}
	if n := p.Pool.Backends[0].Inflight(); n != 3 {
		t.Fatalf("in flight %d, want 3", n)
	}
	close(release)
	for i, ch := range results {
		if r := <-ch; r.body != fmt.Sprintf("/%d", i) {
			t.Fatalf("request %d answered %q", i, r.body)
		}
	}
	waitFor(t, "in flight back to 0", func() bool { return p.Pool.Backends[0].Inflight() == 0 })
}

// TestPipelineEventStreamFailsBehind: an event stream may never end, so
// the requests written behind it are not left waiting for it: the GET
// behind is answered on another connection while the stream still flows.
func TestPipelineEventStreamFailsBehind(t *testing.T) {
	read, end := make(chan string), make(chan struct{})
	var endOnce sync.Once
	stop := func() { endOnce.Do(func() { close(end) }) }
	t.Cleanup(stop) // a failing test still lets the stream end
	be := newSockBackend(t, func(n int, conn net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			if n > 1 {
				answer(conn, "again "+r.URL.Path)
				continue
			}
			read <- r.URL.Path
			if r.URL.Path == "/c" {
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
				<-end
				io.WriteString(conn, "0\r\n\r\n")
				return
			}
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, oneConn)
	events := asyncGet(t, base+"/events")
	<-read
	rc := asyncDo(t, "GET", base+"/c", "")
	<-read
	resp := <-events
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	if c := <-rc; c.status != 200 || c.body != "again /c" {
		t.Fatalf("GET /c behind an event stream: %d %q, want it sent again at once", c.status, c.body)
	}
	stop()
	if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "data:1" {
		t.Fatalf("event stream: %q, %v", body, err)
	}
}

// withAccessLog gives p the shipped default access log (text), to a
// discarding writer: tests run with the defaults users run.
func withAccessLog(t *testing.T, p *Proxy) *Proxy {
	t.Helper()
	al, err := NewAccessLog("text", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(al.Close)
	p.AccessLog = al
	return p
}

// rawClient writes raw, a client's request as bytes, on a connection of
// its own to the proxy at base and reads the answer; head tells a HEAD's
// answer, which has no body, apart.
func rawClient(t *testing.T, base, raw string, head bool) (result, error) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return result{}, err
	}
	req := &http.Request{Method: http.MethodGet}
	if head {
		req.Method = http.MethodHead
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}, err
}

// TestPipelineWhatNeverShares: with a pipelined connection held by a slow
// answer, a client's HTTP/1.0 request, its Connection: close, a HEAD,
// every conditional or range request, a request that is not idempotent
// (even without a body) and one with a body go on a connection of their
// own and are answered at once; an ordinary GET is queued behind the slow answer,
// on its connection (which shows the test would see sharing).
func TestPipelineWhatNeverShares(t *testing.T) {
	slowRead, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	connOf := map[string]int{}
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			mu.Lock()
			connOf[r.URL.Path] = n
			mu.Unlock()
			if r.URL.Path == "/slow" {
				close(slowRead)
				<-release
			}
			if r.Method == http.MethodHead {
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(r.URL.Path))
				continue
			}
			if r.Close { // an HTTP/1.0 request, or one with Connection: close
				fmt.Fprintf(c, "HTTP/1.%d 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", r.ProtoMinor, len(r.URL.Path), r.URL.Path)
				return
			}
			answer(c, r.URL.Path)
		}
	})
	p := withAccessLog(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())})
	var pl *pipeline
	base := pipelinedProxy(t, p, func(x *pipeline) { pl = x; oneConn(x) })
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	slow := asyncDo(t, "GET", base+"/slow", "")
	<-slowRead

	for _, tc := range []struct{ path, raw string }{
		{"/http10", "GET /http10 HTTP/1.0\r\nHost: app\r\n\r\n"},
		{"/http10-keepalive", "GET /http10-keepalive HTTP/1.0\r\nHost: app\r\nConnection: keep-alive\r\n\r\n"},
		{"/close", "GET /close HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"},
		{"/head", "HEAD /head HTTP/1.1\r\nHost: app\r\n\r\n"},
		{"/inm", "GET /inm HTTP/1.1\r\nHost: app\r\nIf-None-Match: \"x\"\r\n\r\n"},
		{"/ims", "GET /ims HTTP/1.1\r\nHost: app\r\nIf-Modified-Since: Sat, 29 Oct 1994 19:43:31 GMT\r\n\r\n"},
		{"/im", "GET /im HTTP/1.1\r\nHost: app\r\nif-match: \"x\"\r\n\r\n"},
		{"/ius", "GET /ius HTTP/1.1\r\nHost: app\r\nIf-Unmodified-Since: Sat, 29 Oct 1994 19:43:31 GMT\r\n\r\n"},
		{"/ir", "GET /ir HTTP/1.1\r\nHost: app\r\nIf-Range: \"x\"\r\nRange: bytes=0-1\r\n\r\n"},
		{"/range", "GET /range HTTP/1.1\r\nHost: app\r\nRANGE: bytes=0-1\r\n\r\n"},
		{"/post-inm", "POST /post-inm HTTP/1.1\r\nHost: app\r\nIf-None-Match: *\r\nContent-Length: 1\r\n\r\nx"},
		// Not idempotent, or with a body: the connection can end under a
		// request written behind an answer, and these could not be sent
		// again.
		{"/post", "POST /post HTTP/1.1\r\nHost: app\r\nContent-Length: 1\r\n\r\nx"},
		{"/post-empty", "POST /post-empty HTTP/1.1\r\nHost: app\r\nContent-Length: 0\r\n\r\n"},
		{"/put", "PUT /put HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\n\r\nabc"},
		// Kept apart by holdApart, and also by shareable: the server
		// streams a chunked body (StreamRequestBody).
		{"/chunked", "GET /chunked HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"},
	} {
		head := strings.HasPrefix(tc.raw, "HEAD")
		r, err := rawClient(t, base, tc.raw, head)
		if err != nil {
			t.Fatalf("%s, while a pipelined connection is held: %v (queued behind the held answer?)", tc.path, err)
		}
		want := tc.path
		if head {
			want = ""
		}
		if r.status != 200 || r.body != want {
			t.Fatalf("%s: %d %q", tc.path, r.status, r.body)
		}
	}
	shared := asyncDo(t, "GET", base+"/shared", "")
	waitFor(t, "/shared queued behind /slow", func() bool {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		return len(pl.conns) == 1 && pl.conns[0].inflight == 2
	})
	select {
	case r := <-shared:
		t.Fatalf("/shared answered while /slow held its connection: %+v; it did not go behind it", r)
	default:
	}
	releaseOnce.Do(func() { close(release) })
	if r := <-slow; r.status != 200 || r.body != "/slow" {
		t.Fatalf("/slow: %d %q", r.status, r.body)
	}
	if r := <-shared; r.status != 200 || r.body != "/shared" {
		t.Fatalf("/shared: %d %q", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if connOf["/shared"] != connOf["/slow"] {
		t.Fatalf("/shared went on connection %d, /slow on %d: want them pipelined on one", connOf["/shared"], connOf["/slow"])
	}
}

// TestPipelineBytesBeyondAnswer: bytes a backend sends after an answer,
// ahead of the next one, end the connection and never become the next
// request's answer: the GETs behind are sent again on a fresh
// connection (a POST never is behind: queuedBehind). Some of these fasthttp's parser would take as an
// answer (blank lines before a status line, any HTTP/x.y).
func TestPipelineBytesBeyondAnswer(t *testing.T) {
	for _, tc := range []struct{ name, first, stray string }{
		{"blank lines", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/a", "\r\n\r\n"},
		{"other version", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/a", "HTTP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"},
		{"past its length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/a", "EVIL"},
		{"body on 204", "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n", "EVIL"},
		// Whole answers, that only the answer before them tells apart.
		{"answer on 204", "HTTP/1.1 204 No Content\r\nContent-Length: 41\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"},
		{"chunked answer on 204", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"},
		{"answer on 304", "HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := withAccessLog(t, &Proxy{})
			a, b, c, _ := queuedBehind(t, p, nil, func(conn net.Conn) {
				io.WriteString(conn, tc.first+tc.stray)
				answer(conn, "EVIL /b")
				answer(conn, "EVIL /c")
			})
			if a.status != 200 && a.status != 204 && a.status != 304 || a.status == 200 && a.body != "/a" {
				t.Fatalf("/a: %d %q", a.status, a.body)
			}
			if b.status != 200 || b.body != "again /b" {
				t.Fatalf("GET /b behind stray bytes: %d %q, want it sent again", b.status, b.body)
			}
			if c.status != 200 || c.body != "again /c" {
				t.Fatalf("GET /c behind stray bytes: %d %q, want it sent again", c.status, c.body)
			}
		})
	}
}

// TestPipelineArrivals: each read from a pipelined connection notes how
// many requests had been written when it returned, and a byte is dated
// by the read that brought it; past the reads remembered, by the oldest.
func TestPipelineArrivals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	var written atomic.Uint64
	a := &arrivals{conn: client, written: &written}
	buf := make([]byte, 64)
	for i := range 6 { // one more than the ring holds, and one more
		written.Store(uint64(i * 10))
		server.Write([]byte("abcd"))
		if n, err := io.ReadFull(a, buf[:4]); n != 4 || err != nil {
			t.Fatal(n, err)
		}
	}
	// Reads 0..5 brought bytes [4i, 4i+4) with 10i written; the ring
	// holds reads 2..5.
	for _, tc := range []struct {
		pos  int64
		want uint64
	}{{23, 50}, {20, 50}, {19, 40}, {8, 20}, {7, 20}, {0, 20}} {
		if got := a.writtenWhen(tc.pos); got != tc.want {
			t.Errorf("byte %d: %d written, want %d", tc.pos, got, tc.want)
		}
	}
	if got := a.writtenWhen(24); got != math.MaxUint64 {
		t.Errorf("a byte not read yet: %d written, want no bound", got)
	}
}

// TestPipelineEndedUnderWrite: a pipelined connection the proxy ends
// (after an answer with stray bytes, or one that closes it) while the
// request behind is being written costs that request nothing: its write
// fails on the closed socket, and it is sent again on a fresh connection,
// as one that was written whole is. The failed write was taken for the
// request's own (502 invalid response, never retried): under CI load,
// FuzzPipelineStrayBytes's request behind stray bytes was queued in the
// moment between its predecessor's answer and settle's end of the
// connection, and got 502.
//
// settle's moment cannot be held open from outside; the write can: the
// request behind carries a header of 8 MiB, which the backend does not
// read, so its write is still under way when the answer before it ends
// the connection, whatever the scheduling.
func TestPipelineEndedUnderWrite(t *testing.T) {
	for name, head := range map[string]string{
		"connection close": "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n/1",
		"204 with a body":  "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nEVIL",
	} {
		t.Run(name, func(t *testing.T) { endedUnderWrite(t, head) })
	}
}

func endedUnderWrite(t *testing.T, first string) {
	read1, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(done) })
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		if n > 1 {
			for {
				r, _ := readReq(br)
				if r == nil {
					return
				}
				answer(c, r.URL.Path)
			}
		}
		// A fixed receive buffer stops the window from growing: the
		// request behind cannot be written whole while nobody reads it.
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		if r, _ := readReq(br); r == nil {
			return
		}
		close(read1)
		if _, err := br.Peek(1); err != nil { // the request behind is being written
			return
		}
		io.WriteString(c, first)
		<-done // the proxy, not the backend, ends the connection
	})
	p := &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}
	base := pipelinedProxy(t, p, oneConn)
	one := asyncDo(t, "GET", base+"/1", "")
	<-read1
	// Straight to the backend's HostClient: the proxy's front takes no
	// header this large, and the request only needs to be slow to write.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(be.url() + "/2")
	req.Header.Set("X-Big", strings.Repeat("b", 8<<20))
	err := p.clients[0].DoTimeout(req, resp, 20*time.Second)
	if r := <-one; r.status/100 != 2 {
		t.Fatalf("/1: %d %q", r.status, r.body)
	}
	if err != nil || resp.StatusCode() != 200 || string(resp.Body()) != "/2" {
		t.Fatalf("/2, behind the answer that ended its connection: %v, %d %q", err, resp.StatusCode(), resp.Body())
	}
	if n := be.conns.Load(); n != 2 {
		t.Fatalf("%d backend connections, want 2", n)
	}
}

// TestPipelineStrayBytesAfterWrite: bytes a backend sends beyond an
// answer only once the request behind was written cannot be dated before
// it (strayAhead); if they do not start a status line, or the answer they
// start does not parse, the request behind is sent again on a fresh
// connection and gets its own answer, never them and never 502. (A whole
// well-formed answer too many cannot be told from the request's own: see
// strayAhead.)
func TestPipelineStrayBytesAfterWrite(t *testing.T) {
	for _, stray := range []string{
		"EVIL",
		"HTTP/1.1 200 OK\r\nContent-Length: EVIL\r\n\r\n",
		"HTTP/1.1 2000 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nEVIL",
	} {
		t.Run(fmt.Sprintf("%q", stray), func(t *testing.T) { strayAfterWrite(t, stray) })
	}
}

func strayAfterWrite(t *testing.T, stray string) {
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		r, _ := readReq(br)
		for r != nil {
			answer(c, r.URL.Path)
			next, _ := readReq(br) // the answer before it is read: the next is written
			if next != nil && n == 1 {
				io.WriteString(c, stray)
			}
			r = next
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, oneConn)
	for _, path := range []string{"/1", "/2"} {
		if r := get(t, base+path); r.status != 200 || r.body != path {
			t.Fatalf("%s: %d %q", path, r.status, r.body)
		}
	}
	if n := be.conns.Load(); n != 2 {
		t.Fatalf("%d backend connections, want 2: /2 sent again on a fresh one", n)
	}
}

// FuzzPipelineStrayBytes: whatever bytes a backend sends after an answer,
// in the write of that answer, they never become the answer to the next
// request, written after they reached the proxy: that request gets its
// own, on the same connection or, when the bytes ended it, sent again on
// another; never 502. (Seed 67059ff4c8f89e2e got 502 under CI load: /b
// was being written when settle ended the connection; see
// TestPipelineEndedUnderWrite.)
func FuzzPipelineStrayBytes(f *testing.F) {
	for _, seed := range []string{
		"", "\r\n", "\r\n\r\n", "EVIL", " ", "HTTP/1.1",
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nEVIL",
		"\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nEVIL\r\n0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	var stray atomic.Pointer[[]byte]
	be := newSockBackend(f, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			out := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
			if r.URL.Path == "/a" {
				out += string(*stray.Load())
			}
			io.WriteString(c, out)
		}
	})
	// newPool and startProxy take a *testing.T.
	backend, err := NewBackend(be.url(), 1, false)
	if err != nil {
		f.Fatal(err)
	}
	pool, err := balancer.NewPool("round_robin", []*balancer.Backend{backend}, nil)
	if err != nil {
		f.Fatal(err)
	}
	p := &Proxy{Pool: pool, Pipeline: 8, Settings: Settings{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := NewServer(p.ServeHTTP, ServerOptions{})
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Shutdown() })
	base := "http://" + ln.Addr().String()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1024 {
			return // more than one read may bring it: see strayAhead
		}
		stray.Store(&b)
		if r := get(t, base+"/a"); r.status != 200 || r.body != "/a" {
			t.Fatalf("/a: %d %q", r.status, r.body)
		}
		if r := get(t, base+"/b"); r.status != 200 || r.body != "/b" {
			t.Fatalf("/b after %q: %d %q", b, r.status, r.body)
		}
	})
}

// FuzzConditionalRaw: the one-pass scan of a client's header block finds
// every conditional or range header fasthttp parses from it (it may find
// more: any If-*, a name only a folded line's continuation spells).
func FuzzConditionalRaw(f *testing.F) {
	for _, seed := range []string{
		"Host: a\r\n\r\n",
		"Host: a\r\nIf-None-Match: \"x\"\r\n\r\n",
		"Host: a\r\nif-modified-since: x\r\n\r\n",
		"Host: a\r\nRANGE: bytes=0-1\r\n\r\n",
		"Host: a\r\nRanges: x\r\nIf-Range: y\r\n\r\n",
		"Host: a\r\nX-A: b\r\n c\r\nIf-Match: *\r\n\r\n",
		"Host: a\nIf-Unmodified-Since: x\n\n",
		"Host: a\r\nReferer: r\r\nRange:bytes=1-\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		var req fasthttp.Request
		raw := append([]byte("GET / HTTP/1.1\r\n"), hdr...)
		if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return
		}
		var found []string
		for _, name := range conditionalHeaders {
			if len(req.Header.Peek(name)) > 0 {
				found = append(found, name)
			}
		}
		if len(found) > 0 && !conditionalRaw(req.Header.RawHeaders()) {
			t.Fatalf("%q: fasthttp parses %v, the scan finds none in %q", hdr, found, req.Header.RawHeaders())
		}
	})
}

// TestPipelineClientLeavesMidBody: a client that goes away in the middle
// of a pipelined answer costs the requests written behind it nothing:
// the rest of an answer within pipelineDrainMax is read off and the GET
// behind gets its answer on the same connection; past it the connection
// ends and the GET is sent again on another. A POST, which could not be
// sent again, is never written behind (holdApart): it is answered while
// the download is held. Through the binary, four clients that kept
// leaving 2 MiB downloads cost twenty others 454 POSTs in 8s, as 502s.
func TestPipelineClientLeavesMidBody(t *testing.T) {
	for _, size := range []int{512 << 10, pipelineDrainMax + 1<<20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { clientLeavesMidBody(t, size) })
	}
}

func clientLeavesMidBody(t *testing.T, size int) {
	readBig, readBehind, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	posted := make(chan struct{})
	var releaseOnce, postedOnce sync.Once
	t.Cleanup(func() {
		postedOnce.Do(func() { close(posted) })
		releaseOnce.Do(func() { close(release) })
	})
	be := newSockBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for {
			r, _ := readReq(br)
			if r == nil {
				return
			}
			if r.URL.Path != "/big" || n > 1 {
				answer(c, r.URL.Path)
				continue
			}
			close(readBig)
			r2, _ := readReq(br) // written behind /big on the same connection
			if r2 == nil {
				return
			}
			close(readBehind)
			<-posted // the head is not sent yet: the connection is not streaming
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			c.Write(make([]byte, 64<<10))
			<-release
			if _, err := c.Write(make([]byte, size-64<<10)); err != nil {
				return // the proxy ended the connection: past pipelineDrainMax
			}
			answer(c, r2.URL.Path)
		}
	})
	base := pipelinedProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, be.url())}, oneConn)
	// The leaving client, on raw bytes: it reads the head and some of the
	// body, then resets its connection.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	<-readBig
	behind := asyncDo(t, "GET", base+"/behind", "")
	<-readBehind
	// The connection holds /big, not yet answered, and /behind: a POST
	// would go behind them if it might.
	select {
	case r := <-asyncDo(t, "POST", base+"/post", "x"):
		if r.status != 200 || r.body != "/post" {
			t.Fatalf("POST while the download is held: %d %q", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("POST while the download is held: no answer in 10s: queued behind it")
	}
	postedOnce.Do(func() { close(posted) })
	if _, err := io.ReadFull(c, make([]byte, 16<<10)); err != nil {
		t.Fatalf("the start of /big: %v", err)
	}
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	time.Sleep(50 * time.Millisecond) // the reset reaches the proxy before the rest of /big
	releaseOnce.Do(func() { close(release) })
	if r := <-behind; r.status != 200 || r.body != "/behind" {
		t.Fatalf("the GET written behind the answer its client left: %d %q", r.status, r.body)
	}
	// The backend's connections: the pipelined one and the POST's, and
	// past pipelineDrainMax the one /behind was sent again on.
	want := int64(2)
	if size > pipelineDrainMax {
		want = 3
	}
	if n := be.conns.Load(); n != want {
		t.Fatalf("%d backend connections, want %d", n, want)
	}
}
