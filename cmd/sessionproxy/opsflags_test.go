package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/redistest"
	"sessionproxy/internal/testutil"
)

// TestRunRedisFlag runs the binary with -redis and no config file: the
// session a backend sets must land in that Redis (without the flag the
// store would be this process's only, and Redis would stay empty).
func TestRunRedisFlag(t *testing.T) {
	r := redistest.Start(t, redistest.Options{})
	b := attrBackend(t)
	addrs := apptest.FreeAddrs(t, 2)
	listen, admin := addrs[0], addrs[1]
	out := apptest.Run(t, "sessionproxy", []string{"XDG_STATE_HOME=" + t.TempDir(), "STATE_DIRECTORY="},
		binary, "run", "-listen", listen, "-admin", admin, "-backend", b.URL, "-redis", r.Addr)
	apptest.WaitListen(t, listen, "sessionproxy", 30*time.Second)
	body, cookie := fetchV(t, "http://"+listen+"/?set=hello", "")
	if body != "-" || cookie == "" {
		t.Fatalf("first request: body %q cookie %q\n%s", body, cookie, out)
	}
	if n := strings.TrimSpace(r.MustCLI("DBSIZE")); n == "0" {
		t.Fatalf("-redis %s: Redis holds no key after a session was set\n%s", r.Addr, out)
	}
	if got := apptest.Stored(t, "http://"+admin, cookie); got["v"] != "hello" {
		t.Fatalf("stored session: %v", got)
	}
	// -redis and a file's memcached nodes exclude each other: check says so.
	conf := writeFile(t, "backends:\n  - url: "+b.URL+"\nsession:\n  memcached:\n    nodes: ['127.0.0.1:11211']\n")
	code, _, errOut := run("run", "-config", conf, "-redis", r.Addr)
	if code != 1 || !strings.Contains(errOut, "exclude each other") {
		t.Fatalf("run -redis over a file with memcached nodes: %d %q", code, errOut)
	}
}

// TestDemoAdminFlag runs `demo -admin` through the binary: the README's
// failover walkthrough reads /status on that address.
func TestDemoAdminFlag(t *testing.T) {
	addrs := apptest.FreeAddrs(t, 2)
	listen, admin := addrs[0], addrs[1]
	out := apptest.Run(t, "sessionproxy demo", []string{"XDG_STATE_HOME=" + t.TempDir(), "STATE_DIRECTORY="},
		binary, "demo", "-listen", listen, "-admin", admin)
	apptest.WaitListen(t, listen, "sessionproxy demo", 30*time.Second)
	apptest.WaitListen(t, admin, "the demo's admin listener", 10*time.Second)
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "backends") {
		t.Fatalf("GET /status on the demo's admin: %d %s", resp.StatusCode, body)
	}
	testutil.WaitFor(t, 5*time.Second, "the demo's guide naming the admin address", func() bool {
		return strings.Contains(out.String(), "http://"+admin+"/status")
	})
}
