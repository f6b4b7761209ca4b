package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
	"sessionproxy/sessionstore"
)

// These tests run the binary with the shipped defaults: the access log is
// on, in its text format, as a new user's proxy runs (CONTRACT section
// 12: the access log never changes what the client receives, and logs
// the bytes that were relayed).

// defaultsConfig is a configuration with nothing but the listener, the
// backends and, if given, extra lines (routes): every other setting is
// the shipped default.
func defaultsConfig(extra string, backends ...string) string {
	return "listen: \"{{listen}}\"\nbackends:\n" + backendsYAML(backends...) + extra
}

// staticRoute serves the files below dir under /files/.
func staticRoute(dir string) string {
	return fmt.Sprintf("routes:\n  - match: {path: \"/files/\"}\n    static: %q\n", dir)
}

var textBytes = regexp.MustCompile(`\bbytes=(-?\d+)`)

// loggedBytes waits for the text access-log line of path (the log is
// flushed every second) and returns its byte count.
func loggedBytes(t *testing.T, p *process, path string) int64 {
	t.Helper()
	var line string
	testutil.WaitFor(t, 10*time.Second, "the access-log line of "+path, func() bool {
		for _, l := range strings.Split(p.stderr(), "\n") {
			if strings.Contains(l, "msg=access") && strings.Contains(l, " path="+path+" ") {
				line = l
				return true
			}
		}
		return false
	})
	m := textBytes.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("access-log line without bytes: %s", line)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// rawGet writes a GET for path with the extra header lines as raw bytes
// and returns the connection and a reader at the start of its answer.
func rawGet(t *testing.T, addr, path, extra string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: defaults.test\r\n"+extra+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readUntil reads r until what it has read ends with want, within d.
func readUntil(c net.Conn, r io.Reader, want string, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	var got []byte
	buf := make([]byte, 1)
	for !bytes.HasSuffix(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			// A chunked body's last byte may come with its EOF.
			if bytes.HasSuffix(got, []byte(want)) {
				break
			}
			return string(got), err
		}
	}
	return string(got), nil
}

// TestSSEUnderDefaultLog: each event of a Server-Sent Events stream
// reaches the client as the backend sends it, with the access log on:
// the client reads the first event while the backend holds the second
// back until it has. The log line, written when the stream ends, counts
// the bytes relayed.
func TestSSEUnderDefaultLog(t *testing.T) {
	const one, two = "data: one\n\n", "data: two\n\n"
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, one)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Second):
			return
		}
		io.WriteString(w, two)
	}))
	t.Cleanup(app.Close)
	p := startProcess(t, defaultsConfig("", app.URL))

	c, br := rawGet(t, p.addr, "/events", "")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readUntil(c, resp.Body, one, 5*time.Second); err != nil {
		t.Fatalf("first event not relayed while the backend holds the second: read %q, %v", got, err)
	}
	close(release)
	if got, err := readUntil(c, resp.Body, two, 5*time.Second); err != nil {
		t.Fatalf("second event: read %q, %v", got, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after the stream: %q, %v", rest, err)
	}
	if n := loggedBytes(t, p, "/events"); n != int64(len(one+two)) {
		t.Fatalf("access log says %d bytes, the client got %d", n, len(one+two))
	}
}

// TestRangeUnderDefaultLog: Range: bytes=0-0 on a static file is 206 with
// exactly one byte and its Content-Range, sent as raw bytes and read to
// the connection's close; the log counts one byte.
func TestRangeUnderDefaultLog(t *testing.T) {
	const size = 5000000
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789"), size/10)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "five.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	app, _ := namedBackend(t, "A", 0)
	p := startProcess(t, defaultsConfig(staticRoute(dir), app.URL))

	for _, tc := range []struct {
		path, rng, contentRange, body string
	}{
		{"/files/five.bin", "bytes=0-0", "bytes 0-0/5000000", "0"},
		{"/files/five.bin?second", "bytes=13-16", "bytes 13-16/5000000", "3456"},
		{"/files/five.bin?suffix", "bytes=-2", "bytes 4999998-4999999/5000000", "89"},
	} {
		c, br := rawGet(t, p.addr, tc.path, "Range: "+tc.rng+"\r\nConnection: close\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		all, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("%s: %v after %d bytes", tc.rng, err, len(all))
		}
		head, body, ok := bytes.Cut(all, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("%s: no header end in %d bytes", tc.rng, len(all))
		}
		h := string(head)
		if !strings.HasPrefix(h, "HTTP/1.1 206 ") || !strings.Contains(h, "\r\nContent-Range: "+tc.contentRange+"\r\n") ||
			!strings.Contains(h, fmt.Sprintf("\r\nContent-Length: %d\r\n", len(tc.body))) {
			t.Fatalf("%s: header\n%s", tc.rng, h)
		}
		if string(body) != tc.body {
			t.Fatalf("%s: %d body bytes (%.20q), want exactly %q", tc.rng, len(body), body, tc.body)
		}
	}
	if n := loggedBytes(t, p, "/files/five.bin"); n != 1 {
		t.Fatalf("access log says %d bytes for bytes=0-0, want 1", n)
	}
}

// TestLargeBodiesUnderDefaultLog: a 300 MiB static file (sparse) and a
// 300 MiB proxied download, through the binary built without the race
// detector and the shipped defaults: the first byte comes promptly, the
// proxy's RSS, sampled during each transfer, grows by less than 64 MiB,
// and the access log counts every byte relayed.
func TestLargeBodiesUnderDefaultLog(t *testing.T) {
	const size, limitKiB = 300 << 20, 64 << 10
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "files", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "files", "warm.txt"), []byte("warm up the path"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/download":
			w.Header().Set("Content-Length", strconv.Itoa(size))
			io.Copy(w, io.LimitReader(newBlocks(t), size))
		case "/chunked":
			io.Copy(w, io.LimitReader(newBlocks(t), size)) // no length: chunked
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(app.Close)
	p := startBinary(t, plainBinary(t), defaultsConfig(staticRoute(dir), app.URL))
	pid := p.cmd.Process.Pid
	for _, warm := range []string{"/warm", "/files/warm.txt"} {
		c, br := rawGet(t, p.addr, warm, "Range: bytes=0-9\r\nConnection: close\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, br)
	}

	for _, path := range []string{"/files/big.bin", "/download", "/chunked"} {
		before := vmRSS(t, pid)
		start := time.Now()
		resp, err := http.Get("http://" + p.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		var first [1]byte
		if _, err := io.ReadFull(resp.Body, first[:]); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		ttfb := time.Since(start)
		n, peak := int64(1), before
		buf := make([]byte, 1<<20)
		for {
			m, err := resp.Body.Read(buf)
			n += int64(m)
			if n%(16<<20) < int64(m) {
				peak = max(peak, vmRSS(t, pid))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v after %d bytes", path, err, n)
			}
		}
		resp.Body.Close()
		t.Logf("%s: first byte after %v, proxy VmRSS %d KiB before, peak %d KiB during", path, ttfb, before, peak)
		if n != size {
			t.Fatalf("%s: %d of %d bytes", path, n, size)
		}
		if ttfb > 2*time.Second {
			t.Errorf("%s: first byte after %v", path, ttfb)
		}
		if peak-before >= limitKiB {
			t.Errorf("%s: proxy RSS grew by %d KiB during a %d MiB transfer, want under %d", path, peak-before, size>>20, limitKiB)
		}
		if logged := loggedBytes(t, p, path); logged != size {
			t.Errorf("%s: access log says %d bytes, the client got %d", path, logged, size)
		}
	}
}

// TestAccessLogBytesFormats: json and combined count the bytes relayed
// of a streamed body and of a range as text does.
func TestAccessLogBytesFormats(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "files", "f.txt"), bytes.Repeat([]byte("x"), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	const streamed = 3 << 20
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(newBlocks(t), streamed)) // chunked
	}))
	t.Cleanup(app.Close)
	for _, format := range []string{"json", "combined"} {
		t.Run(format, func(t *testing.T) {
			p := startProcess(t, defaultsConfig("access_log: "+format+"\n"+staticRoute(dir), app.URL))
			c, br := rawGet(t, p.addr, "/files/f.txt", "Range: bytes=10-14\r\nConnection: close\r\n")
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, br)
			resp, err := http.Get("http://" + p.addr + "/stream")
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != streamed {
				t.Fatalf("stream: %d bytes, %v", n, err)
			}
			resp.Body.Close()
			want := map[string][]string{
				"json": {`"path":"/files/f.txt","status":206,"bytes":5,`,
					fmt.Sprintf(`"path":"/stream","status":200,"bytes":%d,`, streamed)},
				"combined": {`"GET /files/f.txt HTTP/1.1" 206 5 "-"`,
					fmt.Sprintf(`"GET /stream HTTP/1.1" 200 %d "-"`, streamed)},
			}[format]
			testutil.WaitFor(t, 10*time.Second, "both access-log lines", func() bool {
				log := p.stderr()
				return strings.Contains(log, want[0]) && strings.Contains(log, want[1])
			})
		})
	}
}

// TestLogsHoldNoWholeSessionID: the error lines that name a session (a
// store write that failed, a corrupt value on a node) show its first six
// characters, never the whole ID (CONTRACT section 12).
func TestLogsHoldNoWholeSessionID(t *testing.T) {
	node := memcachedtest.Start(t)
	app, _ := namedBackend(t, "A", 0)
	// Without the hot tier every load and write goes to memcached, so a
	// node that is down or holds garbage shows at once.
	p := startProcess(t, defaultsConfig(fmt.Sprintf(`session:
  local_cache: {size: 0}
  memcached:
    nodes: [%q]
`, node.Addr), app.URL))
	resp, err := http.Get("http://" + p.addr + "/?set=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var id string
	for _, c := range resp.Cookies() {
		if c.Name == "SPSESSIONID" {
			id = c.Value
		}
	}
	if len(id) != sessionstore.IDLen {
		t.Fatalf("no session cookie: %v", resp.Header)
	}

	// A corrupt value where the session is.
	if err := memcachedtest.Set(node.Addr, "sp:"+id, []byte("garbage"), 0); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/", nil)
	req.AddCookie(&http.Cookie{Name: "SPSESSIONID", Value: id})
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// A write with the only node down: a new session that cannot be
	// stored.
	node.Stop()
	if resp, err := http.Get("http://" + p.addr + "/?set=2"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("write with the store down: %d, want 503", resp.StatusCode)
		}
	}
	shown := regexp.MustCompile(` session=(\S*)`)
	for _, msg := range []string{`msg="corrupt session value"`, `msg="session write failed"`} {
		var line string
		testutil.WaitFor(t, 10*time.Second, msg, func() bool {
			for _, l := range strings.Split(p.stderr(), "\n") {
				if strings.Contains(l, msg) {
					line = l
					return true
				}
			}
			return false
		})
		m := shown.FindStringSubmatch(line)
		if m == nil || len(m[1]) != sessionstore.LogIDLen {
			t.Errorf("%s: want the first %d characters of the session ID: %s", msg, sessionstore.LogIDLen, line)
		}
	}
	if first, log := id[:sessionstore.LogIDLen], p.stderr(); strings.Contains(log, id) || !strings.Contains(log, "session="+first) {
		t.Errorf("the log holds session %s whole, or not its first characters:\n%s", id, log)
	}
}

// TestAbortedDownloadLogged: a client that goes away after 1 MiB of a
// 64 MiB file or download still gets its access-log line, counting what
// was relayed: more than it read, less than the whole.
func TestAbortedDownloadLogged(t *testing.T) {
	const size = 64 << 20
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "files", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, io.LimitReader(newBlocks(t), size))
	}))
	t.Cleanup(app.Close)
	p := startProcess(t, defaultsConfig(staticRoute(dir), app.URL))
	for _, path := range []string{"/files/big.bin", "/download"} {
		c, br := rawGet(t, p.addr, path, "")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := io.CopyN(io.Discard, br, 1<<20); err != nil {
			t.Fatalf("%s: %d bytes, %v", path, n, err)
		}
		c.Close()
		if n := loggedBytes(t, p, path); n < 1<<20-4096 || n >= size {
			t.Errorf("%s: access log says %d bytes for a client that left after 1 MiB of %d", path, n, size)
		} else {
			t.Logf("%s: %d bytes relayed before the client left", path, n)
		}
	}
}
