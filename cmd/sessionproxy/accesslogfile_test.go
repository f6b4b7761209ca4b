package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestAccessLogReopenUnderLoad: requests run without pause while the log
// file is renamed (as logrotate does) and SIGUSR1 sent to the binary;
// the old and new files then hold exactly one whole line per request
// served, each matching the template, and the new file is not empty.
func TestAccessLogReopenUnderLoad(t *testing.T) {
	app, _ := namedBackend(t, "A", 0)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	conf := strings.Replace(fmt.Sprintf(baseConfig, backendsYAML(app.URL)), "backends:",
		fmt.Sprintf("access_log:\n  format: '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent rt=$request_time up=$upstream_addr s=$session end'\n  path: %q\nbackends:", logPath), 1)
	p := startProcess(t, conf)
	var served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(fmt.Sprintf("http://%s/r/%d", p.addr, i))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // lines keep going to the renamed file until the signal
	p.signal(syscall.SIGUSR1)
	waitLog(t, p, "access log reopened")
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	p.signal(syscall.SIGTERM) // writes out what is buffered
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	line := regexp.MustCompile(`^127\.0\.0\.1 \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /r/\d+ HTTP/1\.1" 200 1 rt=\d+\.\d{3} up=127\.0\.0\.1:\d+ s=[A-Za-z0-9_-]{6} end$`)
	total := 0
	for _, f := range []string{logPath + ".1", logPath} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("%s does not end with a whole line (%d bytes)", f, len(b))
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for _, l := range lines {
			if !line.MatchString(l) {
				t.Fatalf("%s: line not whole or not the template's: %q", f, l)
			}
		}
		t.Logf("%s: %d lines", f, len(lines))
		total += len(lines)
	}
	if int64(total) != served.Load() {
		t.Fatalf("%d lines in the old and new files, %d requests served", total, served.Load())
	}
}

// TestCheckAccessLogErrors: a path the proxy could not write and a
// malformed template are check errors at their lines.
func TestCheckAccessLogErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"access_log:\n  format: combined\n  path: " + filepath.Join(dir, "missing", "access.log") + "\n", ":3: access_log.path: "},
		{"access_log:\n  path: " + dir + "\n", ":2: access_log.path: "},
		{"access_log:\n  format: '$remote_addr $bogus'\n", ":2: access_log.format: unknown variable $bogus"},
		{"access_log: '$status ${status'\n", ":1: access_log.format: unclosed"},
		{"access_log:\n  fromat: json\n", ":2: unknown key \"fromat\""},
	} {
		file := writeFile(t, tc.yaml+"backends:\n  - url: http://127.0.0.1:9001\n")
		code, _, errOut := run("check", "-config", file)
		if code != 1 || !strings.HasPrefix(errOut, file+tc.want) {
			t.Errorf("check %q: %d %q, want %q", tc.yaml, code, errOut, file+tc.want)
		}
	}
	good := writeFile(t, "access_log:\n  format: '$remote_addr $session'\n  path: "+filepath.Join(dir, "a.log")+"\nbackends:\n  - url: http://127.0.0.1:9001\n")
	if code, _, errOut := run("check", "-config", good); code != 0 {
		t.Fatalf("check good: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.log")); err == nil {
		t.Error("check created the log file")
	}
}

// TestAccessLogReopenFailureKeepsFile: SIGUSR1 when the log's directory
// has gone (renamed away): the binary logs the failure and keeps writing
// to the file it has open.
func TestAccessLogReopenFailureKeepsFile(t *testing.T) {
	app, _ := namedBackend(t, "A", 0)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "logs", "access.log")
	if err := os.Mkdir(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(fmt.Sprintf(baseConfig, backendsYAML(app.URL)), "backends:",
		fmt.Sprintf("access_log:\n  format: combined\n  path: %q\nbackends:", logPath), 1)
	p := startProcess(t, conf)
	get := func(path string) {
		resp, err := http.Get("http://" + p.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/before")
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(filepath.Dir(logPath), moved); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	waitLog(t, p, "access log not reopened, still writing to the old file")
	get("/after")
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	b, err := os.ReadFile(filepath.Join(moved, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"GET /before HTTP/1.1"`) || !strings.Contains(string(b), `"GET /after HTTP/1.1"`) {
		t.Fatalf("the old file lacks a line:\n%s", b)
	}
}
