package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/rawtcp"
)

// forwardingEcho is a backend that answers with every line of each
// forwarding header it got, as "name=line|line" lines.
func forwardingEcho(t *testing.T) *httptest.Server {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range r.Header {
			switch strings.ToLower(strings.ReplaceAll(k, "_", "-")) {
			case "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host":
				fmt.Fprintf(w, "%s=%s\n", strings.ToLower(k), strings.Join(vs, "|"))
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// wantEcho fails unless the echoed lines are exactly want, in any order.
func wantEcho(t *testing.T, what, body string, want ...string) {
	t.Helper()
	got := strings.Split(strings.TrimSpace(body), "\n")
	if len(got) != len(want) {
		t.Errorf("%s: backend got\n%s\nwant\n%s", what, body, strings.Join(want, "\n"))
		return
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("%s: backend got\n%s\nwant %q among them", what, body, w)
		}
	}
}

// The shipped defaults (access log on, text) plus the one key under test.
const forwardingConfig = "listen: \"{{listen}}\"\nbackends:\n%s%s"

// TestForwardingHeadersThroughBinary sends issue 22's duplicate
// forwarding lines, as raw bytes, through the real binary.
func TestForwardingHeadersThroughBinary(t *testing.T) {
	b := forwardingEcho(t)
	const dup = "GET /dup HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 198.51.100.1, 198.51.100.2\r\n" +
		"x-real-ip: 6.6.6.6\r\nX-FORWARDED-FOR: 6.6.6.6\r\nX-Forwarded-For:\r\nX-Real-IP: 6.6.6.7\r\n" +
		"x-forwarded-proto: https\r\nX-Forwarded-Proto: https, http\r\nX-Forwarded-Host: evil.example\r\n" +
		"x-FORWARDED-host: evil2.example\r\nX-Forwarded-For: 6.6.6.8\r\nConnection: close\r\n\r\n"

	t.Run("no real_ip_from", func(t *testing.T) {
		p := startProcess(t, fmt.Sprintf(forwardingConfig, backendsYAML(b.URL), ""))
		_, body := rawtcp.Exchange(t, p.addr, dup)
		wantEcho(t, "duplicates", body, "x-forwarded-for=198.51.100.1, 198.51.100.2, 6.6.6.6, 6.6.6.8, 127.0.0.1",
			"x-real-ip=127.0.0.1", "x-forwarded-proto=http", "x-forwarded-host=shop.example")
		waitLog(t, p, "client=127.0.0.1 method=GET path=/dup ")
	})
	t.Run("untrusted peer", func(t *testing.T) {
		p := startProcess(t, fmt.Sprintf(forwardingConfig, backendsYAML(b.URL), "real_ip_from: [\"10.0.0.0/8\"]\n"))
		_, body := rawtcp.Exchange(t, p.addr, dup)
		wantEcho(t, "untrusted", body, "x-forwarded-for=127.0.0.1",
			"x-real-ip=127.0.0.1", "x-forwarded-proto=http", "x-forwarded-host=shop.example")
		waitLog(t, p, "client=127.0.0.1 method=GET path=/dup ")
	})
	// HAProxy's option forwardfor appends its own line after the one
	// the client forged.
	t.Run("behind HAProxy", func(t *testing.T) {
		p := startProcess(t, fmt.Sprintf(forwardingConfig, backendsYAML(b.URL), "real_ip_from: [\"127.0.0.0/8\"]\n"))
		_, body := rawtcp.Exchange(t, p.addr, "GET /ha HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\n"+
			"X-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.7\r\nConnection: close\r\n\r\n")
		wantEcho(t, "haproxy", body, "x-forwarded-for=6.6.6.6, 203.0.113.7, 127.0.0.1",
			"x-real-ip=203.0.113.7", "x-forwarded-proto=https", "x-forwarded-host=shop.example")
		waitLog(t, p, "client=203.0.113.7 method=GET path=/ha ")
	})
}

// TestProxyProtocolTrustThroughBinary: with proxy_protocol, a PROXY
// header names the client only from a peer in real_ip_from.
func TestProxyProtocolTrustThroughBinary(t *testing.T) {
	b := forwardingEcho(t)
	const req = "PROXY TCP4 10.9.9.9 192.0.2.1 5555 80\r\n" +
		"GET /pp HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
	for _, tc := range []struct {
		name, realIPFrom, client string
	}{
		{"untrusted peer", "10.0.0.0/8", "127.0.0.1"},
		{"trusted peer", "127.0.0.0/8", "10.9.9.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProcess(t, fmt.Sprintf(forwardingConfig, backendsYAML(b.URL),
				fmt.Sprintf("proxy_protocol: true\nreal_ip_from: [%q]\n", tc.realIPFrom)))
			_, body := rawtcp.Exchange(t, p.addr, req)
			wantEcho(t, tc.name, body, "x-forwarded-for="+tc.client,
				"x-real-ip="+tc.client, "x-forwarded-proto=http", "x-forwarded-host=a")
			waitLog(t, p, "client="+tc.client+" method=GET path=/pp ")
		})
	}
}

// TestBehindRealHAProxy puts a real HAProxy with option forwardfor in
// front of the binary (shipped defaults plus real_ip_from: HAProxy's
// address). The client, on another loopback address, forges an
// X-Forwarded-For line; HAProxy adds its own line after it, which is the
// one real_ip_from must read.
func TestBehindRealHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (make deps installs it)")
	}
	b := forwardingEcho(t)
	p := startProcess(t, fmt.Sprintf(forwardingConfig, backendsYAML(b.URL), "real_ip_from: [\"127.0.0.1/32\"]\n"))
	front := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
  maxconn 100
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend fe
  bind %s
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  server sp %s
`, front, p.addr)), 0o600)
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", out.String())
		}
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var c net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err = d.Dial("tcp", front); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not start: %v", err)
		}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /via-haproxy HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"+
		"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	// A trusted peer's X-Forwarded-Proto is kept: HAProxy, set up as its
	// documentation advises, replaced the client's.
	wantEcho(t, "via haproxy", string(body), "x-forwarded-for=6.6.6.6, 127.0.0.2, 127.0.0.1",
		"x-real-ip=127.0.0.2", "x-forwarded-proto=http", "x-forwarded-host=shop.example")
	waitLog(t, p, "client=127.0.0.2 method=GET path=/via-haproxy ")
}
