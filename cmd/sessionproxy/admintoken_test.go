package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
)

// TestCheckAdminToken: an admin listener off loopback needs admin_token,
// and check names the admin line.
func TestCheckAdminToken(t *testing.T) {
	for _, c := range []struct {
		admin, token string
		ok           bool
	}{
		{"0.0.0.0:9090", "", false},
		{":9090", "", false},
		{"192.0.2.10:9090", "", false},
		{"[::]:9090", "", false},
		{"0.0.0.0:9090", "s3cret", true},
		{"127.0.0.1:9090", "", true},
		{"127.1.2.3:9090", "", true},
		{"[::1]:9090", "", true},
		{"localhost:9090", "", true},
	} {
		text := "listen: '127.0.0.1:8080'\nbackends:\n  - url: http://127.0.0.1:9001\nadmin: '" + c.admin + "'\n"
		if c.token != "" {
			text += "admin_token: " + c.token + "\n"
		}
		file := writeFile(t, text)
		code, _, errOut := run("check", "-config", file)
		switch {
		case c.ok && code != 0:
			t.Errorf("admin %q, token %q: check exit %d %q, want 0", c.admin, c.token, code, errOut)
		case !c.ok && (code != 1 || !strings.HasPrefix(errOut, file+":4: ") || !strings.Contains(errOut, "admin_token")):
			t.Errorf("admin %q without a token: check exit %d %q, want 1 and %s:4: ... admin_token", c.admin, code, errOut, file)
		}
	}
}

// TestAdminTokenWired runs the binary with admin_token and checks the
// admin listener over HTTP, before and after a reload that changes the
// token.
func TestAdminTokenWired(t *testing.T) {
	app, _ := namedBackend(t, "A", 0)
	conf := "admin: \"{{admin}}\"\nadmin_token: %q\n" + fmt.Sprintf(baseConfig, backendsYAML(app.URL))
	p := startProcess(t, fmt.Sprintf(conf, "first-token"))
	testutil.WaitFor(t, 5*time.Second, "admin listener", func() bool { return adminStatus(t, p, "/healthz", "") == 200 })
	check := func(path, auth string, want int) {
		t.Helper()
		if got := adminStatus(t, p, path, auth); got != want {
			t.Errorf("GET %s with Authorization %q: %d, want %d", path, auth, got, want)
		}
	}
	for _, path := range []string{"/status", "/metrics", "/sessions/x", "/debug/pprof/", "/", "/dashboard.json"} {
		check(path, "", 401)
		check(path, "Bearer wrong", 401)
	}
	check("/status", "Bearer first-token", 200)
	check("/metrics", "Bearer first-token", 200)
	check("/sessions/x", "Bearer first-token", 404)
	check("/debug/pprof/", "Bearer first-token", 200)

	p.write(fmt.Sprintf(conf, "second-token"))
	p.signal(syscall.SIGHUP)
	testutil.WaitFor(t, 5*time.Second, "the reloaded token", func() bool {
		return adminStatus(t, p, "/status", "Bearer second-token") == 200
	})
	check("/status", "Bearer first-token", 401)
	check("/healthz", "", 200)

	// Section 16, through the binary, as raw bytes: a browser's Basic
	// credentials carry the token; a foreign Host (DNS rebinding) gets
	// 403 whatever the credentials, /healthz included.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:second-token"))
	_, port, _ := net.SplitHostPort(p.admin)
	for _, c := range []struct {
		host, path, auth string
		want             string
	}{
		{p.admin, "/status", "Authorization: " + basic + "\r\n", "200"},
		{"localhost:" + port, "/status", "Authorization: " + basic + "\r\n", "200"},
		{p.admin, "/status", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("x:first-token")) + "\r\n", "401"},
		{"evil.example:" + port, "/status", "Authorization: Bearer second-token\r\n", "403"},
		{"evil.example:" + port, "/status", "Authorization: " + basic + "\r\n", "403"},
		{"evil.example:" + port, "/healthz", "", "403"},
	} {
		conn, err := net.Dial("tcp", p.admin)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET "+c.path+" HTTP/1.1\r\nHost: "+c.host+"\r\nConnection: close\r\n"+c.auth+"\r\n")
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.HasPrefix(line, "HTTP/1.1 "+c.want+" ") {
			t.Errorf("Host %q %s %q: %q, want %s", c.host, c.path, c.auth, line, c.want)
		}
	}
}

// adminStatus sends one raw GET to the admin listener of p.
func adminStatus(t *testing.T, p *process, path, auth string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.admin+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadKeepsAdminTokenOffLoopback: admin: needs a restart, so a
// reload whose file moves admin to loopback and drops the token must not
// open the listener that still runs on every interface.
func TestReloadKeepsAdminTokenOffLoopback(t *testing.T) {
	file := writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\nadmin: '0.0.0.0:9090'\nadmin_token: s3cret\n")
	f := runFlags{config: file}
	c, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	a, err := newApp(c, f, newLogger(&log)) // not serving: nothing listens
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.current.Load().store.Close() })
	if err := os.WriteFile(file, []byte("backends:\n  - url: http://127.0.0.1:9001\nadmin: '127.0.0.1:9090'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.reload()
	if got := a.current.Load().cfg.AdminToken; got != "s3cret" {
		t.Fatalf("admin_token after the reload = %q, want the old s3cret kept", got)
	}
	if !strings.Contains(log.String(), "reload failed, keeping the old config") {
		t.Fatalf("refused reload not logged:\n%s", log.String())
	}
}
