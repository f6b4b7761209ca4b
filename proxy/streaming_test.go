package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/sessionstore"
)

// The tests in this file are about bodies that stream through the proxy:
// event streams, long and broken downloads, uploads, and the limits that
// bound them.

// An event stream reaches the client event by event while the backend
// holds it open, and the session instructions on its headers are applied
// when the headers arrive.
func TestEventStreamFlushedAsProduced(t *testing.T) {
	mc := memcachedtest.Start(t)
	store, err := sessionstore.New(sessionstore.Options{LocalSize: 1 << 20,
		Memcached: sessionstore.MemcachedOptions{Nodes: []sessionstore.Node{{ID: "n1", Addr: mc.Addr}}, Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Session-Set-stream", "open")
		fmt.Fprintf(w, "data: hello %s\n\n", r.Header.Get("X-Session-Id"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: bye\n\n")
	}))
	t.Cleanup(app.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, app.URL), Sessions: &Sessions{Store: store}}
	base := startProxy(t, p, ServerOptions{})

	start := time.Now()
	resp, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer close(release) // first: the stream ends, then the proxy can stop
	if resp.Header.Get("X-Session-Set-Stream") != "" || !strings.Contains(resp.Header.Get("Set-Cookie"), "SPSESSIONID=") {
		t.Fatalf("session instructions not applied on the stream's headers: %v", resp.Header)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("first event took %v", took)
	}
	if !strings.HasPrefix(line, "data: hello ") || len(line) < len("data: hello x\n") {
		t.Fatalf("first event %q, want the session id in it", line)
	}
	id := strings.TrimSpace(strings.TrimPrefix(line, "data: hello "))
	var sess sessionstore.Session
	_, err = store.Load([]byte(id), &sess)
	if v, _ := sess.Get("stream"); err != nil || string(v) != "open" {
		t.Fatalf("session %s after the stream's headers: stream=%q, %v", id, v, err)
	}
}

// A response that keeps flowing is never cut by the response timeout,
// which bounds only the wait for its headers.
func TestFlowingBodyOutlivesResponseTimeout(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 10; i++ {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	t.Cleanup(app.Close)
	p := &Proxy{Pool: newPool(t, "round_robin", nil, app.URL), Settings: Settings{ResponseTimeout: 300 * time.Millisecond, ReadIdle: 2 * time.Second}}
	r := get(t, startProxy(t, p, ServerOptions{}))
	if r.status != 200 || strings.Count(r.body, "part ") != 10 {
		t.Fatalf("flowing body: %d %q", r.status, r.body)
	}
}

// A backend that falls silent mid-body for longer than ReadIdle: the
// client's connection is closed (its status went out already) and the
// backend is charged a failure.
func TestSilentBodyCutAfterReadIdle(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "first\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(app.Close)
	pool := newPool(t, "round_robin", nil, app.URL)
	p := &Proxy{Pool: pool, Settings: Settings{ReadIdle: 300 * time.Millisecond}}
	base := startProxy(t, p, ServerOptions{})
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil || string(body) != "first\n" {
		t.Fatalf("silent body: %d %q %v, want 200, the first part, then a broken connection", resp.StatusCode, body, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("cut after %v, ReadIdle is 300ms", took)
	}
	waitFor(t, "the backend charged", func() bool { return pool.Backends[0].Fails() == 1 })
}

// A backend that dies mid-body: the client's connection is closed, never
// a 502 after the headers went out, and the backend is charged.
func TestBackendDiesMidBody(t *testing.T) {
	url, _ := rawBackend(t, nil, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
		c.Write(bytes.Repeat([]byte("x"), 200000))
		// and closes
	})
	pool := newPool(t, "round_robin", nil, url)
	p := &Proxy{Pool: pool}
	base := startProxy(t, p, ServerOptions{})
	raw := rawUntilClose(t, base, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 200 OK\r\n") || strings.Contains(raw, "HTTP/1.1 502") {
		t.Fatalf("response to a body cut short: %.200q", raw)
	}
	if _, body, _ := strings.Cut(raw, "\r\n\r\n"); len(body) != 200000 {
		t.Fatalf("client got %d body bytes, want the 200000 the backend sent and then a closed connection", len(body))
	}
	waitFor(t, "the backend charged", func() bool { return pool.Backends[0].Fails() == 1 })
}

// rawUntilClose writes raw to the proxy and reads until it closes the
// connection (or 5s pass).
func rawUntilClose(t *testing.T, base, raw string) string {
	t.Helper()
	c := rawtcp.Dial(t, strings.TrimPrefix(base, "http://"))
	defer c.Close()
	io.WriteString(c, raw)
	b, _ := io.ReadAll(c)
	return string(b)
}

// A client that goes away mid-body: the upstream connection is closed,
// not pooled with the rest of the body on it, and the next request is
// answered on a fresh connection correctly.
func TestClientGoneMidBodyClosesUpstream(t *testing.T) {
	var backendWriteFailed atomic.Bool
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			io.WriteString(w, "small")
			return
		}
		chunk := bytes.Repeat([]byte("y"), 32<<10)
		for i := 0; i < 4096; i++ { // 128 MiB, far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				backendWriteFailed.Store(true)
				return
			}
		}
	}))
	var conns atomic.Int64
	app.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	app.Start()
	t.Cleanup(app.Close)
	pool := newPool(t, "round_robin", nil, app.URL)
	base := startProxy(t, &Proxy{Pool: pool}, ServerOptions{})

	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 100<<10)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, "the backend to see its connection closed", backendWriteFailed.Load)
	if r := get(t, base+"/small"); r.status != 200 || r.body != "small" {
		t.Fatalf("next request: %d %q", r.status, r.body)
	}
	if conns.Load() != 2 {
		t.Fatalf("backend saw %d connections, want 2: the broken one may not be pooled", conns.Load())
	}
	if pool.Backends[0].Fails() != 0 {
		t.Fatal("a client going away was charged to the backend")
	}
}

// A download larger than any buffer arrives intact.
func TestLargeDownloadIntact(t *testing.T) {
	const size = 20 << 20
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, io.LimitReader(newPattern(), size))
	}))
	t.Cleanup(app.Close)
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, app.URL)}, ServerOptions{})
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	want := sha256.New()
	io.Copy(want, io.LimitReader(newPattern(), size))
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) || resp.ContentLength != size {
		t.Fatalf("download: %d bytes (length %d), %v, checksum match %v", n, resp.ContentLength, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
}

// newPattern returns an endless reader of bytes that are not all alike.
func newPattern() io.Reader { return &pattern{} }

type pattern struct{ i uint32 }

func (p *pattern) Read(b []byte) (int, error) {
	for k := range b {
		p.i = p.i*1664525 + 1013904223
		b[k] = byte(p.i >> 24)
	}
	return len(b), nil
}

// uploadApp answers an upload with its size, its checksum and how it was
// framed.
func uploadApp(hits *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprintf(w, "%d %x te=%v cl=%d", n, h.Sum(nil), r.TransferEncoding, r.ContentLength)
	}
}

func patternSum(size int64) string {
	h := sha256.New()
	io.Copy(h, io.LimitReader(newPattern(), size))
	return fmt.Sprintf("%d %x", size, h.Sum(nil))
}

// Uploads larger than the memory buffer stream through, with a length and
// chunked, and arrive intact.
func TestLargeUploadIntact(t *testing.T) {
	var hits atomic.Int64
	app := httptest.NewServer(uploadApp(&hits))
	t.Cleanup(app.Close)
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, app.URL)}, ServerOptions{MaxBody: 64 << 20})
	const size = 20 << 20
	for _, chunked := range []bool{false, true} {
		var body io.Reader = io.LimitReader(newPattern(), size)
		if chunked {
			body = struct{ io.Reader }{body} // hides the length
		}
		req, _ := http.NewRequest("PUT", base+"/upload", body)
		if !chunked {
			req.ContentLength = size
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), patternSum(size)) {
			t.Fatalf("upload (chunked %v): %d %q", chunked, resp.StatusCode, b)
		}
	}
}

// A streamed request body is never sent twice: the backend that broke
// off reading it fails the request, though PUT is idempotent, while a
// small body, read whole first, is retried on the next backend.
func TestStreamedBodyNeverRetried(t *testing.T) {
	var hits atomic.Int64
	good := httptest.NewServer(uploadApp(&hits))
	t.Cleanup(good.Close)
	bad, _ := rawBackend(t, nil, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		br.Read(make([]byte, 1024)) // some of the body, then gone
	})
	pool := newPool(t, "round_robin", nil, bad, good.URL)
	base := startProxy(t, &Proxy{Pool: pool, Settings: Settings{Retries: 1}}, ServerOptions{MaxBody: 64 << 20})

	put := func(size int64) int {
		req, _ := http.NewRequest("PUT", base+"/upload", io.LimitReader(newPattern(), size))
		req.ContentLength = size
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// round robin: each pair of requests starts on the bad backend once.
	var streamed, small []int
	for i := 0; i < 2; i++ {
		streamed = append(streamed, put(1<<20))
	}
	h := hits.Load()
	for i := 0; i < 2; i++ {
		small = append(small, put(1000))
	}
	if streamed[0] == 200 && streamed[1] == 200 {
		t.Fatalf("streamed uploads %v: one went to the bad backend and must have failed", streamed)
	}
	if h != 1 {
		t.Fatalf("good backend got %d streamed uploads, want 1: a streamed body was retried", h)
	}
	if small[0] != 200 || small[1] != 200 {
		t.Fatalf("small uploads %v: a body read whole is retried on the next backend", small)
	}
}

// A chunked body that goes over max_body mid-stream gets 413 while no
// response has gone out, and the backend's connection is closed so it
// never takes the cut body for a whole one.
func TestChunkedBodyOverMaxBody(t *testing.T) {
	got := make(chan string, 1)
	url, _ := rawBackend(t, nil, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, url)}, ServerOptions{MaxBody: 100 << 10})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 10<<10, bytes.Repeat([]byte("z"), 10<<10))
	go func() {
		for i := 0; i < 30; i++ { // 300 KiB
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
		io.WriteString(c, "0\r\n\r\n")
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("chunked body over max_body: %d close=%v, want 413 and the connection closed", resp.StatusCode, resp.Close)
	}
	select {
	case b := <-got:
		if strings.HasSuffix(b, "0\r\n\r\n") || len(b) > 120<<10 {
			t.Fatalf("backend got %d bytes ending %q: more than max_body, or a finished body", len(b), b[max(0, len(b)-10):])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend connection not closed")
	}
}

// A declared length over max_body is refused before anything is sent on.
func TestDeclaredBodyOverMaxBody(t *testing.T) {
	var hits atomic.Int64
	app := httptest.NewServer(uploadApp(&hits))
	t.Cleanup(app.Close)
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, app.URL)}, ServerOptions{MaxBody: 100 << 10})
	raw := rawUntilClose(t, base, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"+strings.Repeat("a", 1000))
	if !strings.HasPrefix(raw, "HTTP/1.1 413 ") || hits.Load() != 0 {
		t.Fatalf("declared body over max_body: %.100q, backend hits %d", raw, hits.Load())
	}
}

// With request buffering the body is read whole before a backend is
// picked, and reaches it with a length; its temporary file is gone after.
func TestRequestBuffering(t *testing.T) {
	var hits atomic.Int64
	app := httptest.NewServer(uploadApp(&hits))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	base := startProxy(t, &Proxy{Pool: newPool(t, "round_robin", nil, app.URL)},
		ServerOptions{MaxBody: 64 << 20, RequestBuffering: true, TempDir: dir})

	const size = 5 << 20
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/upload", pr) // chunked: length unknown
	done := make(chan string, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	src := io.LimitReader(newPattern(), size)
	io.CopyN(pw, src, size/2)
	time.Sleep(300 * time.Millisecond)
	if hits.Load() != 0 {
		t.Fatal("backend called before the whole body was buffered")
	}
	io.Copy(pw, src)
	pw.Close()
	got := <-done
	if want := "200 " + patternSum(size) + " te=[] cl=" + fmt.Sprint(size); got != want {
		t.Fatalf("buffered upload:\n got %s\nwant %s", got, want)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
