package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// TestH3: with http3: true, HTTP/3 is served on listen_tls's UDP port
// through the same request path (a session set and read back with its
// cookie, the client's address in X-Forwarded-For, a streamed 16 MiB body,
// an event stream flushed per event), and TLS answers over HTTP/1.1 and h2
// advertise it with Alt-Svc. 5000 garbage datagrams on the port cost the
// client nothing.
func TestH3(t *testing.T) {
	const size = 16 << 20
	next := make(chan struct{})
	sent := make(chan string, 1)
	echo := sessionEcho(t, nil)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				select {
				case <-next:
				case <-time.After(10 * time.Second):
					return
				}
			}
		case "/download":
			h := sha256.New()
			io.Copy(io.MultiWriter(w, h), io.LimitReader(newBlocks(t), size))
			sent <- fmt.Sprintf("%x", h.Sum(nil))
		default:
			echo.Config.Handler.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(be.Close)
	h := startH2(t, "", be.URL, "http3: true\n")
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: h.ca.Pool, ServerName: "h2.test"}}
	t.Cleanup(func() { tr.Close() })
	c3 := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	get := func(path, cookie string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c3.Do(req)
		if err != nil {
			t.Fatalf("h3 GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 3 {
			t.Fatalf("h3 GET %s: answered over %s", path, resp.Proto)
		}
		return resp, string(body)
	}
	resp, body := get("/?set=ann", "")
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "SPSESSIONID=") || !strings.Contains(body, "proto=https") || !strings.Contains(body, "xff=127.0.0.1 ") {
		t.Fatalf("h3 first request: cookie %q body %q", sc, body)
	}
	if _, body = get("/", strings.SplitN(sc, ";", 2)[0]); !strings.Contains(body, "user=ann ") {
		t.Fatalf("h3 second request: %q, want the session's user=ann", body)
	}

	// QUIC garbage: random datagrams, and ones shaped as Initial packets
	// (long header, version 1) with nonsense after, cost nobody a request.
	udp, err := net.Dial("udp", h.tls)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 1200)
	for i := range 5000 {
		rand.Read(junk)
		if i%2 == 0 {
			copy(junk, []byte{0xc3, 0, 0, 0, 1, 8})
		}
		udp.Write(junk)
	}
	udp.Close()
	if _, body = get("/", strings.SplitN(sc, ";", 2)[0]); !strings.Contains(body, "user=ann ") {
		t.Fatalf("h3 after 5000 garbage datagrams: %q", body)
	}

	// Alt-Svc over HTTP/1.1 (TLS) and h2.
	_, port, _ := strings.Cut(h.tls, ":")
	want := `h3=":` + port + `"`
	if resp, _ := h.get(t, "/"); !strings.HasPrefix(resp.Header.Get("Alt-Svc"), want) {
		t.Errorf("h2 answer's Alt-Svc %q, want %s", resp.Header.Get("Alt-Svc"), want)
	}
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.ca.Pool, ServerName: "h2.test"}}}
	if r1, err := h1.Get(h.url("/")); err != nil || r1.ProtoMajor != 1 || !strings.HasPrefix(r1.Header.Get("Alt-Svc"), want) {
		t.Errorf("HTTP/1.1 over TLS: %v, want Alt-Svc %s", err, want)
	} else {
		r1.Body.Close()
	}

	// A streamed body.
	resp, err = c3.Get(h.url("/download"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	n, err := io.Copy(sum, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || fmt.Sprintf("%x", sum.Sum(nil)) != <-sent {
		t.Fatalf("h3 download: %d of %d bytes, %v, or another checksum", n, size, err)
	}

	// An event stream, event by event.
	resp, err = c3.Get(h.url("/events"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		got := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			br.ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if want := fmt.Sprintf("data: %d\n", i); line != want {
				t.Fatalf("h3 event %d: %q, want %q", i, line, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("h3 event %d did not arrive while the backend waited: not flushed", i)
		}
		next <- struct{}{}
	}
}
