package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// shippedBackend is one of TestShippedDefaults' two backends: it names
// itself in every answer and does what each path asks of a real app.
func shippedBackend(t *testing.T, name string, release <-chan struct{}) *httptest.Server {
	t.Helper()
	const download = 64 << 20
	up := websocket.Upgrader{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("X-Session-Set-User", "bob")
			io.WriteString(w, name)
		case "/whoami":
			fmt.Fprintf(w, "%s user=%s", name, r.Header.Get("X-Session-Attr-User"))
		case "/logout":
			w.Header().Set("X-Session-Invalidate", "1")
			io.WriteString(w, name)
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Second):
				return
			}
			io.WriteString(w, "data: two\n\n")
		case "/download":
			w.Header().Set("Content-Length", strconv.Itoa(download))
			io.Copy(w, io.LimitReader(newBlocks(t), download))
		case "/ws":
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				kind, msg, err := c.ReadMessage()
				if err != nil || c.WriteMessage(kind, append([]byte(name+":"), msg...)) != nil {
					return
				}
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestShippedDefaults runs the main scenarios once against the binary
// with the shipped defaults exactly: a config that names only the
// listener, two backends and a static route. A session is created through
// one backend and read through both, an event stream arrives event by
// event, a static file and a range of it, a 64 MiB download, a WebSocket
// tunnel, a logout; the access log (on, text) has a line for each with
// the bytes relayed.
func TestShippedDefaults(t *testing.T) {
	release := make(chan struct{})
	a, b := shippedBackend(t, "A", release), shippedBackend(t, "B", release)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	const page = "<h1>static under the defaults</h1>\n"
	if err := os.WriteFile(filepath.Join(dir, "files", "index.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, defaultsConfig(staticRoute(dir), a.URL, b.URL))
	base := "http://" + p.addr
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, string(body)
	}

	// A session made through one backend is read through both.
	if code, _ := get("/login"); code != 200 || len(jar.Cookies(mustURL(t, base))) != 1 {
		t.Fatalf("login: %d, cookies %v", code, jar.Cookies(mustURL(t, base)))
	}
	seen := map[string]bool{}
	for range 4 {
		code, body := get("/whoami")
		name, user, _ := strings.Cut(body, " ")
		if code != 200 || user != "user=bob" {
			t.Fatalf("whoami: %d %q", code, body)
		}
		seen[name] = true
	}
	if !seen["A"] || !seen["B"] {
		t.Fatalf("the session was read through %v, want both backends", seen)
	}

	// An event stream: the first event before the backend sends the second.
	c, br := rawGet(t, p.addr, "/events", "")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readUntil(c, resp.Body, "data: one\n\n", 5*time.Second); err != nil {
		t.Fatalf("first event not relayed before the second was sent: %q, %v", got, err)
	}
	close(release)
	if got, err := readUntil(c, resp.Body, "data: two\n\n", 5*time.Second); err != nil {
		t.Fatalf("second event: %q, %v", got, err)
	}
	c.Close()

	// A static file, whole and a range of it.
	if code, body := get("/files/"); code != 200 || body != page {
		t.Fatalf("static: %d %q", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/files/index.html", nil)
	req.Header.Set("Range", "bytes=1-2")
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 || string(body) != page[1:3] {
			t.Fatalf("range: %d %q", resp.StatusCode, body)
		}
	}

	// A large download.
	start := time.Now()
	resp, err = client.Get(base + "/download")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 64<<20 {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	t.Logf("64 MiB download in %v", time.Since(start))

	// A WebSocket tunnel, with the session's cookie.
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Jar: jar}
	ws, _, err := d.Dial("ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatalf("tunnel: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.HasSuffix(string(msg), ":ping") {
		t.Fatalf("tunnel echo: %q, %v", msg, err)
	}
	ws.Close()

	// Logout: the cookie is expired and the session is gone on both.
	if code, _ := get("/logout"); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if cookies := jar.Cookies(mustURL(t, base)); len(cookies) != 0 {
		t.Fatalf("cookies after logout: %v", cookies)
	}
	for range 2 {
		if code, body := get("/whoami"); code != 200 || !strings.HasSuffix(body, " user=") {
			t.Fatalf("whoami after logout: %d %q", code, body)
		}
	}

	// The access log, on by default, counted what each answer relayed.
	for path, want := range map[string]int64{
		"/events":           int64(len("data: one\n\ndata: two\n\n")),
		"/files/":           int64(len(page)),
		"/files/index.html": 2,
		"/download":         64 << 20,
	} {
		if got := loggedBytes(t, p, path); got != want {
			t.Errorf("access log: %s %d bytes, want %d", path, got, want)
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
