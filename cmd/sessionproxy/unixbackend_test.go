package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// unixApp serves h on a Unix socket in a fresh temporary directory, as
// gunicorn --bind unix:... does, and returns the socket's path.
func unixApp(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp-unix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// fetchBody GETs url with client and returns the status and body.
func fetchBody(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A unix: backend, with the shipped defaults, carries sessions both ways
// and the app sees the client's Host; /status and /metrics name it by its
// URL.
func TestUnixSocketBackendSessions(t *testing.T) {
	sock := unixApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("X-Session-Set-user", "ann")
			io.WriteString(w, "logged in")
		default:
			fmt.Fprintf(w, "user=%s host=%s", r.Header.Get("X-Session-Attr-user"), r.Host)
		}
	}))
	p := startProcess(t, fmt.Sprintf("listen: '{{listen}}'\nadmin: '{{admin}}'\nbackends:\n  - url: 'unix:%s'\n", sock))
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if code, body := fetchBody(t, client, "http://"+p.addr+"/login"); code != 200 || body != "logged in" {
		t.Fatalf("login: %d %q", code, body)
	}
	want := "user=ann host=" + p.addr
	if code, body := fetchBody(t, client, "http://"+p.addr+"/me"); code != 200 || body != want {
		t.Fatalf("after login: %d %q, want %q", code, body, want)
	}
	_, status := fetchBody(t, client, "http://"+p.admin+"/status")
	if up, ok := backendUp(t, status, "unix:"+sock); !ok || !up {
		t.Fatalf("/status does not name the unix backend:\n%s", status)
	}
	_, metrics := fetchBody(t, client, "http://"+p.admin+"/metrics")
	if !strings.Contains(metrics, `sessionproxy_backend_up{upstream="default",backend="unix:`+sock+`"} 1`) {
		t.Fatalf("/metrics does not show the unix backend up:\n%s", metrics)
	}
}

// backendUp finds the backend of url in a /status answer.
func backendUp(t *testing.T, status, url string) (up, found bool) {
	t.Helper()
	var st struct {
		Backends []struct {
			URL string `json:"url"`
			Up  bool   `json:"up"`
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil {
		t.Fatalf("/status: %v", err)
	}
	for _, b := range st.Backends {
		if b.URL == url {
			return b.Up, true
		}
	}
	return false, false
}

// check accepts unix:/abs/path and refuses a relative or unclean one,
// with the line.
func TestCheckUnixBackendURL(t *testing.T) {
	if code, _, errOut := run("check", "-config", writeFile(t, "backends:\n  - url: 'unix:/run/app.sock'\n")); code != 0 {
		t.Fatalf("check unix:/run/app.sock: %d %q", code, errOut)
	}
	for _, url := range []string{"unix:run/app.sock", "unix:/run/../app.sock", "unix:", "unix://run/app.sock"} {
		code, _, errOut := run("check", "-config", writeFile(t, "listen: ':1'\nbackends:\n  - url: '"+url+"'\n"))
		if code == 0 || !strings.Contains(errOut, ":3: backends[0].url") {
			t.Fatalf("check %s: %d %q, want an error on line 3", url, code, errOut)
		}
	}
}

// A large response from a unix: backend is streamed: the proxy's peak
// RSS grows by far less than the body.
func TestUnixSocketBackendStreams(t *testing.T) {
	const size, limitKiB = 128 << 20, 48 << 10
	sent := make(chan string, 1)
	sock := unixApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			io.WriteString(w, "ok")
			return
		}
		h := sha256.New()
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(io.MultiWriter(w, h), io.LimitReader(newBlocks(t), size))
		sent <- fmt.Sprintf("%x", h.Sum(nil))
	}))
	// The plain build: the race detector's own memory would drown the
	// measure.
	p := startBinary(t, plainBinary(t), fmt.Sprintf("listen: '{{listen}}'\nbackends:\n  - url: 'unix:%s'\n", sock))
	fetchBody(t, http.DefaultClient, "http://"+p.addr+"/warm")
	before := procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")
	resp, err := http.Get("http://" + p.addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d of %d bytes, %v", n, size, err)
	}
	if fmt.Sprintf("%x", h.Sum(nil)) != <-sent {
		t.Fatal("download arrived with another checksum than the backend sent")
	}
	after := procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")
	t.Logf("proxy VmHWM +%d KiB for %d MiB", after-before, size>>20)
	if after-before >= limitKiB {
		t.Fatalf("peak RSS grew by %d KiB, want under %d", after-before, limitKiB)
	}
}

// A unix: backend whose socket nobody listens on answers 502, and after
// max_fails (default 3) such tries /status shows it down; the other
// backend serves meanwhile.
func TestUnixSocketBackendDead(t *testing.T) {
	live := unixApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "live") }))
	dead := filepath.Join(filepath.Dir(live), "dead.sock")
	// A socket file left by an app that exited: connect is refused.
	ln, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	p := startProcess(t, fmt.Sprintf("listen: '{{listen}}'\nadmin: '{{admin}}'\nretries: 0\nbackends:\n  - url: 'unix:%s'\n  - url: 'unix:%s'\n", dead, live))
	// retries: 0 so that each request to the dead socket is its answer.
	client := &http.Client{Timeout: 10 * time.Second}
	got502 := 0
	for range 12 {
		code, body := fetchBody(t, client, "http://"+p.addr+"/")
		switch {
		case code == 502:
			got502++
		case code != 200 || body != "live":
			t.Fatalf("%d %q", code, body)
		}
	}
	if got502 == 0 {
		t.Fatal("the dead socket never answered 502")
	}
	_, status := fetchBody(t, client, "http://"+p.admin+"/status")
	if up, ok := backendUp(t, status, "unix:"+dead); !ok || up {
		t.Fatalf("/status does not show the dead socket down:\n%s", status)
	}
}

// httpoxy: a client's Proxy header never reaches an HTTP backend either
// (CGI-style apps read it as HTTP_PROXY, their outgoing proxy).
func TestProxyHeaderDropped(t *testing.T) {
	sock := unixApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proxy=%q other=%q", r.Header.Values("Proxy"), r.Header.Get("X-Other"))
	}))
	p := startProcess(t, fmt.Sprintf("listen: '{{listen}}'\nbackends:\n  - url: 'unix:%s'\n", sock))
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nProxy: http://evil:3128\r\nproxy: x\r\nX-Other: y\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), `proxy=[] other="y"`) {
		t.Fatalf("%s", b)
	}
}

// pipeline works over a unix: backend too: its connections are dialed on
// the socket.
func TestUnixSocketBackendPipelined(t *testing.T) {
	sock := unixApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s", r.URL.Path)
	}))
	p := startProcess(t, fmt.Sprintf("listen: '{{listen}}'\npipeline: 4\nbackends:\n  - url: 'unix:%s'\n", sock))
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 20 {
		path := fmt.Sprintf("/r%d", i)
		if code, body := fetchBody(t, client, "http://"+p.addr+path); code != 200 || body != "path="+path {
			t.Fatalf("%s: %d %q", path, code, body)
		}
	}
}

// A WebSocket tunnel to a unix: backend is dialed on its socket.
func TestUnixSocketBackendWebSocket(t *testing.T) {
	up := websocket.Upgrader{}
	sock := unixApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil || c.WriteMessage(kind, msg) != nil {
				return
			}
		}
	}))
	p := startProcess(t, fmt.Sprintf("listen: '{{listen}}'\nbackends:\n  - url: 'unix:%s'\n", sock))
	c := openTunnel(t, p.addr)
	for i := range 3 {
		if err := tunnelEcho(c, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// A unix: backend that closes idle keep-alive connections (gunicorn's
// keepalive is 2s) before the proxy does (4s): a POST on the next request
// must not find the closed connection and fail.
func TestUnixSocketBackendClosesIdle(t *testing.T) {
	dir, err := os.MkdirTemp("", "sp-unix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{IdleTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := startProcess(t, fmt.Sprintf("listen: '{{listen}}'\nbackends:\n  - url: 'unix:%s'\n", sock))
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 3 {
		resp, err := client.Post("http://"+p.addr+"/", "text/plain", strings.NewReader(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("POST %d", i) {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, b)
		}
		time.Sleep(600 * time.Millisecond) // the backend closes the idle connection
	}
}
