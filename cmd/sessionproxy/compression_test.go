package main

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"
)

// compressible is text that compresses the way pages and scripts do:
// repeated structure, varying content.
func compressible(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<li class=\"item-%d\">Item number %d of the list, %x</li>\n", i%17, i, i*7919)
	}
	return b.Bytes()[:n]
}

// compressionSite starts the binary with a static route over a directory
// of files and a backend app, with the shipped defaults plus extra (YAML
// lines at the top level). It returns the proxy's base URL and the files.
func compressionSite(t *testing.T, extra string, app http.Handler) (base string, files map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files = map[string][]byte{
		"big.css":   compressible(300 << 10), // streamed: over compress.MaxWhole
		"small.js":  compressible(20 << 10),  // compressed whole
		"tiny.txt":  compressible(200),       // under min_length
		"image.png": compressible(20 << 10),  // not a compressible type
	}
	if err := os.Mkdir(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, "static", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if app == nil {
		app = http.NotFoundHandler()
	}
	backend := httptest.NewServer(app)
	t.Cleanup(backend.Close)
	p := startBinary(t, binary, fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
backends: [{url: %q}]
routes:
  - match: {path: /static/}
    static: %q
%s`, backend.URL, dir, extra))
	return "http://" + p.addr, files
}

// plainClient does not ask for or decode any encoding itself.
var plainClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 20 * time.Second}

func fetchRaw(t *testing.T, method, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, body
}

// decode undoes a Content-Encoding.
func decode(t *testing.T, enc string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch enc {
	case "":
		return body
	case "gzip":
		zr, err := stdgzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brrr.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown Content-Encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return out
}

func hasVary(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "Accept-Encoding") {
				return true
			}
		}
	}
	return false
}

// TestCompressionEachEncoding: with the shipped defaults (plus
// proxied: true for the backend's answers), each encoding the client
// asks for alone comes back and decodes to the original, for a static
// file compressed whole (with its compressed Content-Length), one
// streamed (chunked), and a backend's answer held in memory and one
// streamed; each has Vary, a weak ETag and no Accept-Ranges.
func TestCompressionEachEncoding(t *testing.T) {
	page, stream := compressible(30<<10), compressible(400<<10)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush() // chunked: length unknown
			w.Write(stream)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(page)))
		w.Write(page)
	})
	base, files := compressionSite(t, "compression: {proxied: true}\n", app)
	for _, enc := range []string{"zstd", "br", "gzip"} {
		for _, c := range []struct {
			path  string
			want  []byte
			whole bool
		}{
			{"/static/small.js", files["small.js"], true},
			{"/static/big.css", files["big.css"], false},
			{"/page", page, true},
			{"/stream", stream, false},
		} {
			resp, body := fetchRaw(t, "GET", base+c.path, "Accept-Encoding", enc)
			h := resp.Header
			if resp.StatusCode != 200 || h.Get("Content-Encoding") != enc {
				t.Errorf("%s %s: status %d, Content-Encoding %q", enc, c.path, resp.StatusCode, h.Get("Content-Encoding"))
				continue
			}
			if got := decode(t, enc, body); !bytes.Equal(got, c.want) {
				t.Errorf("%s %s: decodes to %d bytes, not the %d sent", enc, c.path, len(got), len(c.want))
			}
			if len(body) >= len(c.want)/2 {
				t.Errorf("%s %s: %d bytes compressed to %d", enc, c.path, len(c.want), len(body))
			}
			if !hasVary(h) || !strings.HasPrefix(h.Get("ETag"), `W/"`) || h.Get("Accept-Ranges") != "" {
				t.Errorf("%s %s: Vary %q, ETag %q, Accept-Ranges %q", enc, c.path, h.Values("Vary"), h.Get("ETag"), h.Get("Accept-Ranges"))
			}
			if c.whole && resp.ContentLength != int64(len(body)) || !c.whole && resp.ContentLength != -1 {
				t.Errorf("%s %s: Content-Length %d for %d bytes (whole: %v)", enc, c.path, resp.ContentLength, len(body), c.whole)
			}
		}
	}
}

// TestCompressionNeverTouches: the responses compression leaves as they
// are, and which of them still get Vary.
func TestCompressionNeverTouches(t *testing.T) {
	text := compressible(20 << 10)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/encoded":
			w.Header().Set("Content-Encoding", "gzip")
		case "/no-transform":
			w.Header().Set("Cache-Control", "public, No-Transform")
		case "/partial":
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(text)-1, 2*len(text)))
			w.WriteHeader(http.StatusPartialContent)
		}
		w.Write(text)
	})
	base, files := compressionSite(t, "compression: {proxied: true}\n", app)
	ae := []string{"Accept-Encoding", "gzip, br, zstd"}
	for _, c := range []struct {
		name, method, path string
		header             []string
		status             int
		want               []byte // the body, byte for byte
		vary               bool
	}{
		{"short", "GET", "/static/tiny.txt", ae, 200, files["tiny.txt"], true},
		{"not compressible", "GET", "/static/image.png", ae, 200, files["image.png"], false},
		{"no Accept-Encoding", "GET", "/static/small.js", nil, 200, files["small.js"], true},
		{"q=0", "GET", "/static/small.js", []string{"Accept-Encoding", "gzip;q=0, identity"}, 200, files["small.js"], true},
		{"identity preferred", "GET", "/static/small.js", []string{"Accept-Encoding", "gzip;q=0.5, identity"}, 200, files["small.js"], true},
		{"range", "GET", "/static/big.css", append([]string{"Range", "bytes=100-199"}, ae...), 206, files["big.css"][100:200], true},
		{"backend encoded", "GET", "/encoded", ae, 200, text, false},
		{"backend no-transform", "GET", "/no-transform", ae, 200, text, false},
		{"backend 206", "GET", "/partial", ae, 206, text, true},
		{"request no-transform", "GET", "/static/small.js", append([]string{"Cache-Control", "no-transform"}, ae...), 200, files["small.js"], false},
	} {
		resp, body := fetchRaw(t, c.method, base+c.path, c.header...)
		h := resp.Header
		if resp.StatusCode != c.status || !bytes.Equal(body, c.want) {
			t.Errorf("%s: status %d, %d bytes; want %d, the %d bytes unchanged", c.name, resp.StatusCode, len(body), c.status, len(c.want))
		}
		if ce := h.Get("Content-Encoding"); ce != "" && c.name != "backend encoded" {
			t.Errorf("%s: Content-Encoding %q", c.name, ce)
		}
		if hasVary(h) != c.vary {
			t.Errorf("%s: Vary %q, want Accept-Encoding: %v", c.name, h.Values("Vary"), c.vary)
		}
		if c.status == 200 && strings.HasPrefix(c.path, "/static/") && strings.HasPrefix(h.Get("ETag"), "W/") {
			t.Errorf("%s: uncompressed, yet a weak ETag %q", c.name, h.Get("ETag"))
		}
	}

	// HEAD: the headers a GET gets, no body, no Content-Length.
	resp, body := fetchRaw(t, "HEAD", base+"/static/big.css", ae...)
	h := resp.Header
	if resp.StatusCode != 200 || len(body) != 0 || h.Get("Content-Encoding") != "zstd" || !hasVary(h) ||
		!strings.HasPrefix(h.Get("ETag"), "W/") || h.Get("Accept-Ranges") != "" || h.Get("Content-Length") != "" {
		t.Errorf("HEAD: status %d, %d bytes, headers %v", resp.StatusCode, len(body), h)
	}
	get1, _ := fetchRaw(t, "GET", base+"/static/big.css", ae...)
	if get1.Header.Get("ETag") != h.Get("ETag") || get1.Header.Get("Content-Encoding") != h.Get("Content-Encoding") {
		t.Errorf("HEAD and GET differ: ETag %q/%q", h.Get("ETag"), get1.Header.Get("ETag"))
	}
}

// TestCompressionProxiedOff: by default a backend's answer is not
// compressed, nor given Vary (BREACH: docs/config.md).
func TestCompressionProxiedOff(t *testing.T) {
	text := compressible(20 << 10)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(text)
	})
	base, _ := compressionSite(t, "", app)
	resp, body := fetchRaw(t, "GET", base+"/page", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, text) || hasVary(resp.Header) {
		t.Errorf("proxied answer touched: %v", resp.Header)
	}
	resp, _ = fetchRaw(t, "GET", base+"/static/small.js", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("a static file is not compressed by default: %v", resp.Header)
	}
}

// TestCompressionConditional: the weak ETag of a compressed answer, sent
// back in If-None-Match, gets 304 with that weak ETag and Vary.
func TestCompressionConditional(t *testing.T) {
	base, _ := compressionSite(t, "", nil)
	resp, _ := fetchRaw(t, "GET", base+"/static/small.js", "Accept-Encoding", "br")
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) {
		t.Fatalf("ETag %q is not weak", etag)
	}
	resp, body := fetchRaw(t, "GET", base+"/static/small.js", "Accept-Encoding", "br", "If-None-Match", etag)
	if resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("ETag") != etag || !hasVary(resp.Header) {
		t.Errorf("If-None-Match %s: status %d, ETag %q, Vary %q", etag, resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Values("Vary"))
	}
	// A Range with If-Range naming the weak ETag is not served as a
	// range (If-Range compares strongly): the whole file, compressed.
	resp, _ = fetchRaw(t, "GET", base+"/static/small.js", "Accept-Encoding", "br", "Range", "bytes=0-9", "If-Range", etag)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "br" {
		t.Errorf("If-Range with the weak ETag: status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
}

// TestCompressionSSEPerEvent: an event stream through proxied: true
// reaches the client gzip-compressed, event by event: the backend sends
// the next event only once the client has decoded the one before.
func TestCompressionSSEPerEvent(t *testing.T) {
	const events = 5
	got := make(chan struct{}, events) // never blocks the client
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range events {
			fmt.Fprintf(w, "id: %d\ndata: event number %d %s\n\n", i, i, strings.Repeat("padding ", 20))
			w.(http.Flusher).Flush()
			select {
			case <-got:
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Second):
				return // the client never saw it: the test fails there
			}
		}
	})
	base, _ := compressionSite(t, "compression: {proxied: true}\n", app)
	req, _ := http.NewRequest("GET", base+"/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := stdgzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	for i := range events {
		done := make(chan string, 1)
		go func() {
			var ev strings.Builder
			for {
				line, err := br.ReadString('\n')
				ev.WriteString(line)
				if err != nil || line == "\n" {
					done <- ev.String()
					return
				}
			}
		}()
		select {
		case ev := <-done:
			if !strings.HasPrefix(ev, fmt.Sprintf("id: %d\ndata: event number %d ", i, i)) {
				t.Fatalf("event %d: %q", i, ev)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("event %d did not arrive on its own: not flushed", i)
		}
		got <- struct{}{}
	}
}

// TestCheckCompression: check names an unknown encoding and a bad
// min_length at their lines.
func TestCheckCompression(t *testing.T) {
	bad := writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\ncompression:\n  encodings: [zstd, deflate, zstd]\n  min_length: 1KiB\n  types: [json]\n")
	code, _, errOut := run("check", "-config", bad)
	want := []string{
		bad + `:4: compression.encodings[1]: unknown encoding "deflate" (want zstd | br | gzip)`,
		bad + `:4: compression.encodings[2]: encoding "zstd" is listed twice`,
		bad + `:6: compression.types[0]: type "json" is not type/subtype or type/*`,
	}
	if code != 1 || strings.TrimSpace(errOut) != strings.Join(want, "\n") {
		t.Errorf("check: exit %d\n%s\nwant exit 1 and\n%s", code, errOut, strings.Join(want, "\n"))
	}
	for _, ml := range []string{"lots", "-1", "1.5KiB"} {
		bad = writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\ncompression:\n  min_length: "+ml+"\n")
		if code, _, errOut = run("check", "-config", bad); code != 1 || !strings.HasPrefix(errOut, bad+":4: ") {
			t.Errorf("check min_length %s: exit %d %q, want exit 1 and %s:4: ...", ml, code, errOut, bad)
		}
	}
	off := writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\ncompression: {encodings: []}\n")
	if code, _, errOut = run("check", "-config", off); code != 0 {
		t.Errorf("check with compression off: exit %d %q", code, errOut)
	}
}

// TestCompressionStreamingMemory: a 128 MiB chunked answer through
// proxied: true, run as its own process without the race detector,
// arrives compressed and intact, and grows the proxy's peak RSS
// (VmHWM) by less than 64 MiB: it is compressed as it streams.
func TestCompressionStreamingMemory(t *testing.T) {
	const size, limitKiB = 128 << 20, 64 << 10
	chunk := compressible(1 << 20)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/warm" {
			io.WriteString(w, "ok")
			return
		}
		w.(http.Flusher).Flush() // chunked
		for i := 0; i < size/len(chunk); i++ {
			fmt.Fprintf(w, "%08d", i) // every MiB differs from the one before
			w.Write(chunk[8:])
		}
	})
	backend := httptest.NewServer(app)
	t.Cleanup(backend.Close)
	p := startBinary(t, plainBinary(t), fmt.Sprintf(`listen: "{{listen}}"
admin: "{{admin}}"
backends: [{url: %q}]
compression: {proxied: true}
`, backend.URL))
	fetchRaw(t, "GET", "http://"+p.addr+"/warm", "Accept-Encoding", "gzip")
	before := procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")
	req, _ := http.NewRequest("GET", "http://"+p.addr+"/big", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 2 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := stdgzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil || n != size {
		t.Fatalf("decoded %d bytes (%v), want %d", n, err, size)
	}
	after := procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")
	t.Logf("VmHWM %d KiB before, %d KiB after 128 MiB compressed", before, after)
	if after-before > limitKiB {
		t.Errorf("peak RSS grew by %d KiB, limit %d KiB", after-before, limitKiB)
	}
}
