package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sessionproxy/internal/testutil"
)

// countingWS is a WebSocket backend that echoes every message and counts
// the tunnels it holds open, and the most it held at once.
type countingWS struct {
	*httptest.Server
	open, peak atomic.Int64
}

func newCountingWS(t *testing.T) *countingWS {
	t.Helper()
	b := &countingWS{}
	up := websocket.Upgrader{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		n := b.open.Add(1)
		for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
		}
		defer func() { b.open.Add(-1); c.Close() }()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil || c.WriteMessage(kind, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// rawUpgrade writes a browser's handshake for path as raw bytes and reads
// the answer's head. The connection stays open, closed at the end of the
// test; on a 101 it is the tunnel.
func rawUpgrade(t *testing.T, addr, path string) (net.Conn, int, string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, 0, "", err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	hs := "GET " + path + " HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(c, hs); err != nil {
		return nil, 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, 0, "", err
	}
	body, _ := io.ReadAll(resp.Body)
	c.SetDeadline(time.Time{})
	return c, resp.StatusCode, string(body), nil
}

// openWS opens a tunnel to path through gorilla's client.
func openWS(t *testing.T, addr, path string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("opening a tunnel to %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantRefusedWS checks that a handshake to path gets 503 naming limit.
func wantRefusedWS(t *testing.T, addr, path, limit string) {
	t.Helper()
	_, status, body, err := rawUpgrade(t, addr, path)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusServiceUnavailable || !strings.HasSuffix(body, "("+limit+")\n") {
		t.Fatalf("handshake to %s over %s: %d %q, want 503 naming %s", path, limit, status, body, limit)
	}
}

// limitsConfig is the shipped default configuration (access log on, text)
// with the two limits set low and a second upstream for /narrow.
const limitsConfig = `listen: "{{listen}}"
admin: "{{admin}}"
max_tunnels: %d
backends:
  - url: %q
upstreams:
  narrow:
    max_conns: 2
    backends: [{url: %q}]
routes:
  - match: {path: /narrow}
    upstream: narrow
`

// TestTunnelLimitsBinary: through the real binary with the default
// configuration, a tunnel holds one of its upstream's max_conns and one
// of max_tunnels; a handshake over either gets 503 and is counted by
// reason; after a SIGHUP that raises max_tunnels, new handshakes get the
// new limit and the tunnels opened before it still count, against
// max_tunnels and against their backend's max_conns.
func TestTunnelLimitsBinary(t *testing.T) {
	wide, narrow := newCountingWS(t), newCountingWS(t)
	p := startProcess(t, fmt.Sprintf(limitsConfig, 4, wide.URL, narrow.URL))

	var open []*websocket.Conn
	for range 2 {
		open = append(open, openWS(t, p.addr, "/narrow"))
	}
	wantRefusedWS(t, p.addr, "/narrow", "max_conns")
	for range 2 {
		open = append(open, openWS(t, p.addr, "/ws"))
	}
	wantRefusedWS(t, p.addr, "/ws", "max_tunnels")
	for i, c := range open {
		if err := tunnelEcho(c, fmt.Sprint("tunnel ", i)); err != nil {
			t.Fatalf("tunnel %d after the refusals: %v", i, err)
		}
	}
	if n := narrow.peak.Load(); n != 2 {
		t.Fatalf("the narrow backend held %d tunnels at most, want its max_conns of 2", n)
	}
	if got := tunnelGauge(t, p); got != "4" {
		t.Fatalf("sessionproxy_tunnels_active = %s, want 4", got)
	}
	for reason, want := range map[string]float64{"max_conns": 1, "max_tunnels": 1} {
		name := fmt.Sprintf("sessionproxy_tunnels_refused_total{reason=%q}", reason)
		if got := metric(t, p.admin, name); got != want {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
	// The default access log (text, flushed each second) has both.
	waitLog(t, p, "status=101")
	waitLog(t, p, "status=503")

	// Raised by a reload: new handshakes get the new limit, and the
	// tunnels already open still count against it.
	p.write(fmt.Sprintf(limitsConfig, 5, wide.URL, narrow.URL))
	p.signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")
	// The narrow backend's two tunnels from before the reload hold its
	// max_conns in the new configuration too.
	wantRefusedWS(t, p.addr, "/narrow", "max_conns")
	open = append(open, openWS(t, p.addr, "/ws"))
	wantRefusedWS(t, p.addr, "/ws", "max_tunnels")
	for i, c := range open {
		if err := tunnelEcho(c, fmt.Sprint("after the reload ", i)); err != nil {
			t.Fatalf("tunnel %d after the reload: %v", i, err)
		}
	}

	// Closing one frees its place.
	open[0].Close()
	testutil.WaitFor(t, 10*time.Second, "a freed place", func() bool { return tunnelGauge(t, p) == "4" })
	c := openWS(t, p.addr, "/ws")
	if err := tunnelEcho(c, "in the freed place"); err != nil {
		t.Fatal(err)
	}
}

// TestTunnelsFromOneClientDefaultLimits: the case, with the
// shipped defaults exactly: 3,000 tunnels from one client to one backend.
// 2,048 (max_conns) get through, the rest get 503 without reaching the
// backend, and what the proxy holds grows by what the open tunnels cost,
// not by what was asked.
func TestTunnelsFromOneClientDefaultLimits(t *testing.T) {
	const asked, maxConns, perTunnelKiB = 3000, 2048, 64
	backend := newCountingWS(t)
	p := startBinary(t, plainBinary(t), fmt.Sprintf("listen: \"{{listen}}\"\nadmin: \"{{admin}}\"\nbackends:\n  - url: %q\n", backend.URL))
	pid := p.cmd.Process.Pid
	// Warm up pools and workers, as TestIdleTunnelMemory does.
	for range 20 {
		c := openWS(t, p.addr, "/ws")
		if err := tunnelEcho(c, "warm"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "the warm-up tunnels closed", func() bool { return tunnelGauge(t, p) == "0" })
	time.Sleep(200 * time.Millisecond)
	before := vmRSS(t, pid)

	var mu sync.Mutex
	statuses := map[int]int{}
	var tunnels []net.Conn
	var wg sync.WaitGroup
	errs := make(chan error, asked)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < asked; i += 8 {
				c, status, _, err := rawUpgrade(t, p.addr, "/ws")
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				statuses[status]++
				if status == http.StatusSwitchingProtocols {
					tunnels = append(tunnels, c)
				} else {
					c.Close()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("handshake: %v", err)
	}
	if statuses[101] != maxConns || statuses[503] != asked-maxConns {
		t.Fatalf("answers %v, want %d × 101 and %d × 503", statuses, maxConns, asked-maxConns)
	}
	if n := backend.peak.Load(); n > maxConns {
		t.Fatalf("the backend held %d tunnels at once, over max_conns (%d)", n, maxConns)
	}
	if got := tunnelGauge(t, p); got != fmt.Sprint(maxConns) {
		t.Fatalf("sessionproxy_tunnels_active = %s, want %d", got, maxConns)
	}
	time.Sleep(500 * time.Millisecond)
	after := vmRSS(t, pid)
	t.Logf("proxy VmRSS %d KiB before, %d KiB with %d tunnels open and %d refused: %.1f KiB per open tunnel",
		before, after, maxConns, asked-maxConns, float64(after-before)/maxConns)
	if grown := after - before; grown >= maxConns*perTunnelKiB {
		t.Fatalf("RSS grew by %d KiB, want under %d KiB (%d KiB for each of %d open tunnels)",
			grown, maxConns*perTunnelKiB, perTunnelKiB, maxConns)
	}
	// Still tunnels: the first, the last.
	for _, c := range []net.Conn{tunnels[0], tunnels[len(tunnels)-1]} {
		if err := rawEcho(c, "still there"); err != nil {
			t.Fatal(err)
		}
	}
}

// rawEcho sends msg as a masked text frame on an open tunnel and checks
// that it comes back as the backend's unmasked frame.
func rawEcho(c net.Conn, msg string) error {
	mask := [4]byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(msg))}, mask[:]...)
	for i := range len(msg) {
		frame = append(frame, msg[i]^mask[i%4])
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame); err != nil {
		return err
	}
	got := make([]byte, 2+len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if want := "\x81" + string(rune(len(msg))) + msg; string(got) != want {
		return fmt.Errorf("echo %q, want %q", got, want)
	}
	return nil
}

// TestCheckLimits: check reports a limit that is not a positive whole
// number as FILE:LINE, one line per error.
func TestCheckLimits(t *testing.T) {
	file := writeFile(t, "backends: [{url: 'http://a:1'}]\nmax_tunnels: 0\nupstreams:\n  ws:\n    max_conns: -3\n    backends: [{url: 'http://b:1'}]\n")
	code, _, errOut := run("check", "-config", file)
	want := file + ":2: max_tunnels must be 1 or more, got 0\n" + file + ":5: upstreams.ws.max_conns must be 1 or more, got -3\n"
	if code != 1 || errOut != want {
		t.Fatalf("check: %d\n%s\nwant exit 1 and\n%s", code, errOut, want)
	}
}
