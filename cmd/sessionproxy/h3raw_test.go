package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"sessionproxy/internal/tlstest"
)

// h3Dial opens a QUIC connection that negotiated h3 to addr. The requests
// on it are written by hand (h3Send), so that fields quic-go's own client
// would refuse to send reach the proxy as they are.
func h3Dial(t *testing.T, addr string, ca *tlstest.CA) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, addr, &tls.Config{RootCAs: ca.Pool, ServerName: "h2.test", NextProtos: []string{"h3"}}, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("QUIC dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.CloseWithError(0, "") })
	return c
}

// h3Headers is an HTTP/3 HEADERS frame (RFC 9114 §7.2.2) carrying the
// name, value pairs of fields, QPACK-encoded without the dynamic table.
func h3Headers(fields ...string) []byte {
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(qpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	frame := quicvarint.Append(nil, 0x01)
	frame = quicvarint.Append(frame, uint64(block.Len()))
	return append(frame, block.Bytes()...)
}

// h3Send opens a request stream on c, writes fields as its HEADERS frame
// and ends it.
func h3Send(t *testing.T, c *quic.Conn, fields ...string) *quic.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatalf("open a request stream: %v", err)
	}
	if _, err := s.Write(h3Headers(fields...)); err != nil {
		t.Fatalf("write HEADERS: %v", err)
	}
	s.Close()
	return s
}

// h3Read reads the answer on s: its :status, its body (the DATA frames'
// payload), or the error that reset the stream or closed the connection.
func h3Read(s *quic.Stream) (status, body string, err error) {
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(s)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	for len(all) > 0 {
		typ, n, err := quicvarint.Parse(all)
		if err != nil {
			return "", "", err
		}
		all = all[n:]
		l, n, err := quicvarint.Parse(all)
		if err != nil || uint64(len(all)-n) < l {
			return "", "", fmt.Errorf("truncated frame %#x", typ)
		}
		payload := all[n : n+int(l)]
		all = all[n+int(l):]
		switch typ {
		case 0x01:
			if status != "" {
				continue // trailers
			}
			dec := qpack.NewDecoder().Decode(payload)
			for {
				hf, err := dec()
				if err != nil {
					break
				}
				if hf.Name == ":status" {
					status = hf.Value
				}
			}
		case 0x00:
			b.Write(payload)
		}
	}
	return status, b.String(), nil
}

// TestH3Hygiene: over HTTP/3, requests malformed under RFC 9114 §4.2-4.3
// (written as raw QPACK, since quic-go's client refuses to send them) are
// refused, with a stream error or 400, and never reach the backend: CR, LF
// or NUL in a value, connection-specific fields, Upgrade, TE other than
// trailers, an upper-case name, a space or CR LF in :path. Several `cookie`
// fields are joined ("; ") before the session lookup. A well-formed request
// on the same QUIC connection is answered afterwards.
func TestH3Hygiene(t *testing.T) {
	var seen atomic.Int64
	be := sessionEcho(t, &seen)
	h := startH2(t, "", be.URL, "http3: true\n")
	c := h3Dial(t, h.tls, h.ca)
	req := func(extra ...string) []string {
		return append([]string{":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/"}, extra...)
	}
	bad := map[string][]string{
		"CR LF in a value":       req("x-a", "1\r\nX-Injected: 1"),
		"LF in a value":          req("x-a", "1\nX-Injected: 1"),
		"NUL in a value":         req("x-a", "1\x00"),
		"connection":             req("connection", "close"),
		"keep-alive":             req("keep-alive", "300"),
		"proxy-connection":       req("proxy-connection", "keep-alive"),
		"transfer-encoding":      req("transfer-encoding", "chunked"),
		"upgrade":                req("upgrade", "h2c"),
		"upgrade websocket":      req("upgrade", "websocket"),
		"te other than trailers": req("te", "gzip"),
		"upper-case name":        req("X-Upper", "1"),
		"space in :path":         {":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/a b"},
		"CR LF in :path":         {":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/a\r\nX: 1"},
		"CR LF in :authority":    {":method", "GET", ":scheme", "https", ":authority", "h2.test\r\nX: 1", ":path", "/"},
		"no :path":               {":method", "GET", ":scheme", "https", ":authority", "h2.test"},
		// quic-go's server lets these through; h2front's validRequest
		// refuses them, as HTTP/1.1 would read them otherwise.
		"space around a value": req("x-a", " 1 "),
		"@ in :authority":      {":method", "GET", ":scheme", "https", ":authority", "evil@h2.test", ":path", "/"},
		"method not a token":   {":method", "GET /x", ":scheme", "https", ":authority", "h2.test", ":path", "/"},
	}
	for name, fields := range bad {
		status, body, err := h3Read(h3Send(t, c, fields...))
		var se *quic.StreamError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("%s: %v (the connection, not the stream, failed)", name, err)
		}
		if err == nil && status != "400" {
			t.Errorf("%s: status %q body %q, want a refusal (stream error or 400)", name, status, body)
		}
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the backend got %d of the malformed requests", n)
	}

	status, body, err := h3Read(h3Send(t, c, req()...))
	if err != nil || status != "200" || !strings.Contains(body, "proto=https") {
		t.Fatalf("a good request after the bad ones: status %q body %q, %v", status, body, err)
	}
	// A session (h3Read keeps no response fields: its cookie comes from
	// the h2 client), then its cookie among others as three fields.
	resp, _ := h.get(t, "/?set=ann")
	cookie := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	status, body, err = h3Read(h3Send(t, c, req("cookie", "a=1", "cookie", cookie, "cookie", "b=2")...))
	if err != nil || status != "200" {
		t.Fatalf("several cookie fields: status %q, %v", status, err)
	}
	if want := "cookie=a=1; " + cookie + "; b=2 "; !strings.Contains(body, "user=ann ") || !strings.Contains(body, want) {
		t.Fatalf("several cookie fields: backend saw %q, want user=ann and one line %q", body, want)
	}
}

// TestH3StreamFlood: a client that opens 20000 request streams on one QUIC
// connection and resets each at once (the HTTP/3 form of rapid reset)
// costs the proxy bounded CPU and memory; the streams it may open at a
// time are capped (MaxIncomingStreams, as h2's concurrent streams), and
// another client's requests keep being answered meanwhile.
func TestH3StreamFlood(t *testing.T) {
	var slow atomic.Int64
	be := floodBackend(t, &slow)
	h := startH2(t, plainBinary(t), be.URL, "http3: true\n")
	pid := h.p.cmd.Process.Pid
	h.get(t, "/fast")
	rssBefore, cpuBefore := vmRSS(t, pid), cpuTicks(t, pid)
	stop := make(chan struct{})
	by := h.bystander(stop)

	c := h3Dial(t, h.tls, h.ca)
	frame := h3Headers(":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/slow")
	const streams = 20000
	sent := 0
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for sent < streams {
		s, err := c.OpenStreamSync(ctx)
		if err != nil {
			break // the proxy closed the connection: a defence too
		}
		s.Write(frame)
		s.CancelWrite(0x10c) // H3_REQUEST_CANCELLED
		s.CancelRead(0x10c)
		sent++
	}
	elapsed := time.Since(start)
	// The flood's own ceiling: at no time more than the stream limit open.
	if ctx.Err() != nil {
		t.Errorf("the flood did not finish in 60s (%d streams)", sent)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-by.done
	rssAfter, cpuAfter := vmRSS(t, pid), cpuTicks(t, pid)
	t.Logf("%d streams opened and reset in %v; the backend got %d of them; proxy CPU %d ms, VmRSS %d -> %d KiB; bystander: %d answers, %d failures, slowest %v",
		sent, elapsed, slow.Load(), (cpuAfter-cpuBefore)*10, rssBefore, rssAfter, by.answers.Load(), by.fails.Load(), time.Duration(by.slowest.Load()))
	if by.fails.Load() > 0 || by.answers.Load() == 0 {
		t.Errorf("the other client got %d failures and %d answers during the flood", by.fails.Load(), by.answers.Load())
	}
	if d := time.Duration(by.slowest.Load()); d > 2*time.Second {
		t.Errorf("the other client's slowest answer took %v during the flood", d)
	}
	if cpu := (cpuAfter - cpuBefore) * 10; cpu > 15000 {
		t.Errorf("the flood cost the proxy %d ms of CPU", cpu)
	}
	if grew := rssAfter - rssBefore; grew > 64<<10 {
		t.Errorf("the flood grew the proxy's RSS by %d KiB", grew)
	}
	h.get(t, "/fast")
}

// TestH3StreamLimit: a client may not hold more request streams open on
// one QUIC connection than the proxy's limit (128, h2's): the 129th
// cannot be opened while the others wait on the backend.
func TestH3StreamLimit(t *testing.T) {
	var slow atomic.Int64
	be := floodBackend(t, &slow)
	h := startH2(t, "", be.URL, "http3: true\n")
	c := h3Dial(t, h.tls, h.ca)
	n := 0
	for ; n < 1000; n++ {
		if _, err := c.OpenStream(); err != nil {
			break // quic.StreamLimitReachedError: no credit from the server
		}
	}
	if n != 128 {
		t.Fatalf("the client could open %d streams at once, want the limit 128", n)
	}
	// One-way streams: a client's control and two QPACK streams.
	n = 0
	for ; n < 1000; n++ {
		if _, err := c.OpenUniStream(); err != nil {
			break
		}
	}
	if n != 3 {
		t.Fatalf("the client could open %d unidirectional streams, want 3", n)
	}
}

// TestH3Upload: an 8 MiB request body (under the default max_body 10MiB) over HTTP/3 reaches the backend
// whole (the flow-control windows, 256 KiB a stream and 1 MiB a
// connection, bound what waits unread, not what passes).
func TestH3Upload(t *testing.T) {
	const size = 8 << 20
	got := make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		got <- fmt.Sprintf("%d %x", n, h.Sum(nil))
	}))
	t.Cleanup(be.Close)
	h := startH2(t, "", be.URL, "http3: true\n")
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: h.ca.Pool, ServerName: "h2.test"}}
	t.Cleanup(func() { tr.Close() })
	sum := sha256.New()
	body := io.TeeReader(io.LimitReader(newBlocks(t), size), sum)
	req, _ := http.NewRequest(http.MethodPost, h.url("/upload"), body)
	req.ContentLength = size
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("h3 upload: %v", err)
	}
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x", size, sum.Sum(nil)); resp.StatusCode != 200 || <-got != want {
		t.Fatalf("h3 upload: status %d, or the backend got another body", resp.StatusCode)
	}
}

// TestH3OversizedHeaders: a header block over the limit (16 KiB, as h2's
// header list and an HTTP/1.1 request head) is refused by the HTTP/3
// server (http3.Server.MaxHeaderBytes: 431, or the stream reset while it is
// still being sent) before the bridge sees it,
// never reaches the backend, and the same QUIC connection still gets
// answers.
func TestH3OversizedHeaders(t *testing.T) {
	var seen atomic.Int64
	be := sessionEcho(t, &seen)
	h := startH2(t, "", be.URL, "http3: true\n")
	c := h3Dial(t, h.tls, h.ca)
	for _, size := range []int{20 << 10, 256 << 10} {
		s, err := c.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		var status string
		if _, err = s.Write(h3Headers(":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/", "x-big", strings.Repeat("a", size))); err == nil {
			s.Close()
			status, _, err = h3Read(s)
		} // else the proxy reset the stream while it was written: a refusal
		var se *quic.StreamError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("%d bytes of header: %v (the connection, not the stream, failed)", size, err)
		}
		if err == nil && status != "431" {
			// The request path's 400 would be a refusal too, but one paid
			// for by decoding the block and writing it to the request
			// path: quic-go's MaxHeaderBytes must stop it first, with 431
			// or by resetting the stream.
			t.Errorf("%d bytes of header: status %q, want 431 or the stream reset at the header limit", size, status)
		}
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the backend got %d of the oversized requests", n)
	}
	if status, _, err := h3Read(h3Send(t, c, ":method", "GET", ":scheme", "https", ":authority", "h2.test", ":path", "/")); err != nil || status != "200" {
		t.Fatalf("a good request after the oversized ones: status %q, %v", status, err)
	}
}
