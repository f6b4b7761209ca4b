package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sessionproxy/internal/testutil"
)

// echoWS is a WebSocket backend that echoes every message.
func echoWS(t *testing.T) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(s.Close)
	return s
}

func openTunnel(t *testing.T, addr string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("opening a tunnel: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tunnelEcho(c *websocket.Conn, msg string) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	_, got, err := c.ReadMessage()
	if err == nil && string(got) != msg {
		err = fmt.Errorf("echo %q, want %q", got, msg)
	}
	return err
}

// tunnelGauge reads sessionproxy_tunnels_active from the admin listener.
func tunnelGauge(t *testing.T, p *process) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.admin + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sessionproxy_tunnels_active "); ok {
			return v
		}
	}
	return "missing"
}

const tunnelConfig = `listen: "{{listen}}"
admin: "{{admin}}"
timeouts:
  shutdown: %s
backends:
  - url: %q
`

// TestSIGTERMWithTunnelsOpen: open tunnels keep working for
// timeouts.shutdown after SIGTERM, are then closed, and the process exits 0.
func TestSIGTERMWithTunnelsOpen(t *testing.T) {
	backend := echoWS(t)
	p := startProcess(t, fmt.Sprintf(tunnelConfig, "2s", backend.URL))
	tunnels := []*websocket.Conn{openTunnel(t, p.addr), openTunnel(t, p.addr)}
	for _, c := range tunnels {
		if err := tunnelEcho(c, "before"); err != nil {
			t.Fatal(err)
		}
	}
	if got := tunnelGauge(t, p); got != "2" {
		t.Fatalf("sessionproxy_tunnels_active = %s with two tunnels open", got)
	}
	start := time.Now()
	p.signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	for _, c := range tunnels {
		if err := tunnelEcho(c, "during the grace period"); err != nil {
			t.Fatalf("a tunnel stopped at SIGTERM, before timeouts.shutdown: %v", err)
		}
	}
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if waited := time.Since(start); waited < 1500*time.Millisecond {
		t.Fatalf("exited %v after SIGTERM, before timeouts.shutdown (2s) with tunnels open", waited)
	}
	for _, c := range tunnels {
		if err := tunnelEcho(c, "after"); err == nil {
			t.Fatal("a tunnel outlived the process")
		}
	}
	if !strings.Contains(p.stderr(), "tunnels still open at timeouts.shutdown were closed") {
		t.Fatalf("no word of the closed tunnels in the log:\n%s", p.stderr())
	}
}

// TestSIGTERMWaitsOnlyForOpenTunnels: once the last tunnel ends, the
// process exits without waiting out timeouts.shutdown.
func TestSIGTERMWaitsOnlyForOpenTunnels(t *testing.T) {
	backend := echoWS(t)
	p := startProcess(t, fmt.Sprintf(tunnelConfig, "60s", backend.URL))
	c := openTunnel(t, p.addr)
	if err := tunnelEcho(c, "hi"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	select {
	case code := <-p.exited:
		t.Fatalf("exited (%d) with a tunnel open", code)
	default:
	}
	c.Close()
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

var (
	plainBinaryOnce sync.Once
	plainBinaryPath string
	plainBinaryErr  error
)

// plainBinary builds sessionproxy without the race detector, whose shadow
// memory would swamp a measurement of the process's own.
func plainBinary(t *testing.T) string {
	t.Helper()
	plainBinaryOnce.Do(func() {
		plainBinaryPath = filepath.Join(filepath.Dir(binary), "sessionproxy-plain")
		out, err := exec.Command("go", "build", "-o", plainBinaryPath, ".").CombinedOutput()
		if err != nil {
			plainBinaryErr = fmt.Errorf("building sessionproxy: %v\n%s", err, out)
		}
	})
	if plainBinaryErr != nil {
		t.Fatal(plainBinaryErr)
	}
	return plainBinaryPath
}

// vmRSS reads a process's resident set size in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	return procStatusKiB(t, pid, "VmRSS:")
}

// procStatusKiB reads a KiB figure such as "VmHWM:" from /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("%s line %q: %v", field, l, err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/PID/status", field)
	return 0
}

// TestIdleTunnelMemory: 1,000 idle tunnels to a real backend cost the
// proxy under 64 KiB each in RSS.
func TestIdleTunnelMemory(t *testing.T) {
	const n, limitKiB = 1000, 64
	backend := echoWS(t)
	p := startBinary(t, plainBinary(t), fmt.Sprintf(tunnelConfig, "5s", backend.URL))
	pid := p.cmd.Process.Pid
	// Warm up: the first tunnels fill pools and start the workers that
	// every later one reuses.
	for i := 0; i < 20; i++ {
		c := openTunnel(t, p.addr)
		if err := tunnelEcho(c, "warm"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	before := vmRSS(t, pid)

	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
				c, _, err := d.Dial("ws://"+p.addr+"/ws", nil)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
				if err := tunnelEcho(c, "hello"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for err := range errs {
		t.Fatalf("opening %d tunnels: %v", n, err)
	}
	if got := tunnelGauge(t, p); got != strconv.Itoa(n) {
		t.Fatalf("sessionproxy_tunnels_active = %s, want %d", got, n)
	}
	time.Sleep(500 * time.Millisecond) // the tunnels are idle now
	after := vmRSS(t, pid)
	perTunnel := float64(after-before) / n
	t.Logf("proxy VmRSS %d KiB before, %d KiB with %d idle tunnels: %.1f KiB per tunnel", before, after, n, perTunnel)
	if perTunnel >= limitKiB {
		t.Fatalf("%.1f KiB per idle tunnel, want under %d", perTunnel, limitKiB)
	}
	// Still tunnels, not dead sockets.
	for _, i := range []int{0, n / 2, n - 1} {
		if err := tunnelEcho(conns[i], "still there"); err != nil {
			t.Fatalf("tunnel %d: %v", i, err)
		}
	}
}

// TestReloadKeepsTunnels: SIGHUP builds a new proxy; tunnels opened before
// it keep running and count with those opened after.
func TestReloadKeepsTunnels(t *testing.T) {
	backend := echoWS(t)
	p := startProcess(t, fmt.Sprintf(tunnelConfig, "2s", backend.URL))
	before := openTunnel(t, p.addr)
	if err := tunnelEcho(before, "one"); err != nil {
		t.Fatal(err)
	}
	p.write(fmt.Sprintf(tunnelConfig, "3s", backend.URL))
	p.signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")
	after := openTunnel(t, p.addr)
	for _, c := range []*websocket.Conn{before, after} {
		if err := tunnelEcho(c, "two"); err != nil {
			t.Fatalf("after the reload: %v", err)
		}
	}
	if got := tunnelGauge(t, p); got != "2" {
		t.Fatalf("sessionproxy_tunnels_active = %s after a reload, want 2", got)
	}
}

// TestTunnelOverTLSListener: wss:// through listen_tls, with a frame the
// client sends in the same TLS records as its handshake.
func TestTunnelOverTLSListener(t *testing.T) {
	backend := echoWS(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a", "a.test")
	tlsAddr := freeAddr(t)
	startProcess(t, "listen: '{{listen}}'\nlisten_tls: '"+tlsAddr+"'\n"+
		"tls:\n  certificates:\n    - {cert: '"+cert+"', key: '"+key+"'}\nbackends:\n  - url: '"+backend.URL+"'\n")
	var c *tls.Conn
	testutil.WaitFor(t, 10*time.Second, "the TLS listener", func() bool {
		var err error
		c, err = tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		return err == nil
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// A masked text frame "hi" right behind the handshake, in one write.
	frame := []byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2}
	hs := "GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := c.Write(append([]byte(hs), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("wss handshake: %v %+v", err, resp)
	}
	echoed := make([]byte, 4)
	if _, err := io.ReadFull(br, echoed); err != nil || string(echoed) != "\x81\x02hi" {
		t.Fatalf("echo %q (%v), want the unmasked frame", echoed, err)
	}
}
