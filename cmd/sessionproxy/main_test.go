package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = realMain(args, &o, &e)
	return code, o.String(), e.String()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "sp.yaml")
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestVersion(t *testing.T) {
	code, out, _ := run("version")
	if code != 0 || !strings.HasPrefix(out, "sessionproxy ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestCheck(t *testing.T) {
	good := writeFile(t, "backends:\n  - url: http://127.0.0.1:9001\n")
	if code, out, errOut := run("check", "-config", good); code != 0 {
		t.Fatalf("check good: %d %q %q", code, out, errOut)
	}
	bad := writeFile(t, "listen: ':8080'\nbackends:\n  - url: ftp://x\nsession:\n  ttl: soon\n")
	code, _, errOut := run("check", "-config", bad)
	if code != 1 || !strings.HasPrefix(errOut, bad+":5: ") {
		t.Fatalf("check bad: %d %q, want exit 1 and %s:5: ...", code, errOut, bad)
	}
	bad2 := writeFile(t, "listen: ':8080'\nbackends:\n  - url: ftp://x\n  - url: http://a:1\n    weight: 0\n")
	code, _, errOut = run("check", "-config", bad2)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], bad2+":3: ") || !strings.HasPrefix(lines[1], bad2+":5: ") {
		t.Fatalf("check bad2: %d %q, want one FILE:LINE line per error", code, errOut)
	}
}

// TestCheckErrorPagesInFileOrder: check prints the errors of several
// error_pages entries (a map) down the file, and the same every time.
func TestCheckErrorPagesInFileOrder(t *testing.T) {
	file := writeFile(t, "backends: [{url: 'http://a:1'}]\nerror_pages:\n  503: /nonexistent/503.html\n  200: /nonexistent/200.html\n  404: /nonexistent/404.html\n")
	want := []string{":3: error_pages.503: ", ":4: error_pages: 200 is not", ":4: error_pages.200: ", ":5: error_pages.404: "}
	for range 20 {
		code, _, errOut := run("check", "-config", file)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		ok := code == 1 && len(lines) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = strings.HasPrefix(lines[i], file+want[i])
		}
		if !ok {
			t.Fatalf("check: %d\n%s\nwant, in this order, FILE%s", code, errOut, strings.Join(want, "...\nFILE"))
		}
	}
}

func TestCheckMissingBackendsHasALine(t *testing.T) {
	file := writeFile(t, "listen: ':8080'\n")
	code, _, errOut := run("check", "-config", file)
	if code != 1 || !strings.HasPrefix(errOut, file+":1: no backends") {
		t.Fatalf("check without backends: %d %q, want FILE:1: no backends...", code, errOut)
	}
}

func TestRunWithoutBackends(t *testing.T) {
	code, _, errOut := run("run", "-listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "-backend URL") || !strings.Contains(errOut, "backends:") {
		t.Fatalf("run without backends: %d %q", code, errOut)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	file := writeFile(t, "listen: '127.0.0.1:1'\nadmin: '127.0.0.1:2'\nbackends:\n  - url: http://127.0.0.1:9001\n  - url: http://127.0.0.1:9002\n"+
		"session:\n  memcached:\n    nodes: ['n1:127.0.0.1:11211']\n")
	f := runFlags{config: file, listen: "127.0.0.1:3", backends: listFlag{"http://127.0.0.1:9100"},
		memcached: "a:127.0.0.1:1,127.0.0.1:2"}
	c, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:3" || c.Admin != "127.0.0.1:2" || len(c.Backends) != 1 ||
		c.Backends[0].URL != "http://127.0.0.1:9100" || c.Backends[0].Weight != 1 ||
		strings.Join(memcachedSettings(c).Nodes, ",") != "a:127.0.0.1:1,127.0.0.1:2" {
		t.Fatalf("flags not applied over the file: %+v", c)
	}
	// A bad flag value is reported without a file line.
	f.backends = listFlag{"nope"}
	_, err = f.load()
	if err == nil || strings.Contains(err.Error(), "line ") {
		t.Fatalf("bad -backend: %v", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := run("serve"); code != 2 || !strings.Contains(errOut, "usage:") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
}
