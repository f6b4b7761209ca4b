package examples_test

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// examples/php/run.sh is the one command that shows adapters/php at work:
// an unchanged PHP page on two PHP-FPM pools behind sessionproxy keeps one
// session whichever pool answers, and its login rotates the ID.
func TestPHPExampleOneCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command("sh", "php/run.sh")
	cmd.Env = append(cmd.Environ(), "LISTEN="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("run.sh:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(90 * time.Second) // it builds the binary first
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run.sh never listened")
		}
		time.Sleep(100 * time.Millisecond)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(method, path string, form url.Values) string {
		t.Helper()
		var resp *http.Response
		var err error
		if method == "POST" {
			resp, err = client.PostForm("http://"+addr+path, form)
		} else {
			resp, err = client.Get("http://" + addr + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	page := regexp.MustCompile(`pool (\w).*?Session <code>([^<]+)</code>, visit (\d+)`)
	pools, sid := map[string]bool{}, ""
	for i := 1; i <= 4; i++ {
		m := page.FindStringSubmatch(strings.ReplaceAll(get("GET", "/", nil), "\n", " "))
		if m == nil || m[3] != string(rune('0'+i)) || (sid != "" && m[2] != sid) {
			t.Fatalf("visit %d: %v (session %q)", i, m, sid)
		}
		pools[m[1]], sid = true, m[2]
	}
	if !pools["A"] || !pools["B"] {
		t.Fatalf("pools seen: %v, want A and B", pools)
	}
	body := strings.ReplaceAll(get("POST", "/?action=login", url.Values{"user": {"José 🙂"}}), "\n", " ")
	m := page.FindStringSubmatch(body)
	if m == nil || m[2] == sid || !strings.Contains(body, "Logged in as <b>José 🙂</b>") {
		t.Fatalf("login: %v\n%s", m, body)
	}
}
