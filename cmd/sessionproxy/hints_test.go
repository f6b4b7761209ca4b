package main

import (
	be "encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
	"sessionproxy/sessionstore"
)

// sessionBackend keeps what the tests below need in a session: /login
// sets user, /set sets v, /logout invalidates, and every answer says
// which session and attributes the backend was given.
func sessionBackend(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("X-Session-Set-User", r.URL.Query().Get("user"))
		case "/set":
			w.Header().Set("X-Session-Set-V", r.URL.Query().Get("v"))
		case "/logout":
			w.Header().Set("X-Session-Invalidate", "1")
		}
		fmt.Fprintf(w, "id=%s user=%s v=%s", r.Header.Get("X-Session-Id"),
			r.Header.Get("X-Session-Attr-User"), r.Header.Get("X-Session-Attr-V"))
	}))
	t.Cleanup(s.Close)
	return s
}

// hintsConfig is the shipped default configuration plus the memcached
// nodes (state_dir left to its default, under the test's XDG_STATE_HOME).
func hintsConfig(app string, n1, n2 *memcachedtest.Server) string {
	return fmt.Sprintf(`listen: "{{listen}}"
backends:
  - url: %q
session:
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, app, n1.Addr, n2.Addr)
}

// ask sends one request with the session cookie (if any) and returns the
// status, the body and the session cookie set.
func ask(t *testing.T, p *process, path, cookie string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", "SPSESSIONID="+cookie)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	set := ""
	for _, c := range resp.Cookies() {
		if c.Name == "SPSESSIONID" {
			set = c.Value
		}
	}
	return resp.StatusCode, string(body), set
}

// askOK is ask until the proxy answers 200 (a store catching up answers
// 503 meanwhile).
func askOK(t *testing.T, p *process, path, cookie string) (string, string) {
	t.Helper()
	var body, set string
	testutil.WaitFor(t, 20*time.Second, "a 200 for "+path, func() bool {
		var code int
		code, body, set = ask(t, p, path, cookie)
		return code == 200
	})
	return body, set
}

func stopProxy(t *testing.T, p *process) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// The case, through the binary with the default configuration: n2
// misses a logout and a write (stopped, SIGSTOP), the proxy stops, n1 (the
// only node with them) stops, n2 comes back with its stale copies, and the
// proxy starts again. It must replay its hint file to n2 before n2 serves
// reads: the logged-out session does not come back, the newer write is
// not lost. (With the hints in memory, as before, the new proxy served
// user=ann and v=old.)
func TestHintsSurviveAProxyRestart(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	app := sessionBackend(t)
	cfg := hintsConfig(app.URL, n1, n2)
	p := startProcess(t, cfg)
	_, out := askOK(t, p, "/login?user=ann", "")
	_, other := askOK(t, p, "/set?v=old", "")
	if out == "" || other == "" {
		t.Fatal("no session cookies")
	}

	n2.Freeze()
	if body, _ := askOK(t, p, "/logout", out); !strings.Contains(body, "user=ann") {
		t.Fatalf("logout request: %s", body)
	}
	if body, _ := askOK(t, p, "/set?v=new", other); !strings.Contains(body, "v=old") {
		t.Fatalf("write request: %s", body)
	}
	stopProxy(t, p)
	n1.Stop()
	n2.Thaw()

	p = startProcess(t, cfg)
	body, set := askOK(t, p, "/", out)
	if strings.Contains(body, "user=ann") || strings.Contains(body, "id="+out) || set == out {
		t.Fatalf("the logged-out session came back after the restart: %s\n%s", body, p.stderr())
	}
	if body, _ := askOK(t, p, "/", other); !strings.Contains(body, "v=new") {
		t.Fatalf("the write n2 missed is lost after the restart: %s\n%s", body, p.stderr())
	}
	if !strings.Contains(p.stderr(), "hint file adopted") {
		t.Fatalf("no hint file adopted:\n%s", p.stderr())
	}
}

// hintDir is where the proxies of t keep their hint files with the
// default state_dir.
func hintDir(t *testing.T) string {
	return filepath.Join(stateHome(t), "sessionproxy", "hints")
}

// appendRecord writes a hint record as CONTRACT's format says, by hand:
// length, CRC32-C of the payload, kind 1, ID length, ID, value.
func appendRecord(b, id, val []byte) []byte {
	payload := append(append([]byte{1, byte(len(id))}, id...), val...)
	b = be.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = be.BigEndian.AppendUint32(b, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, payload...)
}

func hintHeader() []byte {
	b := append([]byte("SPHINTS1"), 0, 0, 0, 0)
	return be.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// A hint file left by an instance that crashed, damaged in the middle and
// cut short at its end: the proxy starts, reports both with the file's
// name and offsets, and replays the records that read.
func TestCorruptHintFileIsReported(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	app := sessionBackend(t)
	now := time.Now()
	var ids [][]byte
	data := hintHeader()
	var offs []int
	for range 3 {
		id := sessionstore.AppendNewID(nil)
		ids = append(ids, id)
		s := sessionstore.Session{ID: id, Created: now.UnixMilli(), Version: 3, Touched: now.Unix(), Expires: now.Unix() + 3600}
		offs = append(offs, len(data))
		data = appendRecord(data, id, s.AppendEncode(nil))
	}
	data[offs[1]+12] ^= 0x55                         // the second record damaged
	data = append(data, data[offs[0]:offs[0]+20]...) // a last record cut short
	if err := os.MkdirAll(hintDir(t), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(hintDir(t), "n2.0123456789abcdef.hints")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, hintsConfig(app.URL, n1, n2))
	askOK(t, p, "/", "")
	log := p.stderr()
	for _, want := range []string{"file=" + path, fmt.Sprintf("offset=%d", offs[1]), "corrupt record",
		fmt.Sprintf("offset=%d", len(data)-20), "truncated record"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	// n2 is caught up in the background: the readable records reach it.
	testutil.WaitFor(t, 20*time.Second, "the readable records replayed to n2", func() bool {
		_, err0 := memcachedtest.Get(n2.Addr, "sp:"+string(ids[0]))
		_, err2 := memcachedtest.Get(n2.Addr, "sp:"+string(ids[2]))
		return err0 == nil && err2 == nil
	})
	if _, err := memcachedtest.Get(n2.Addr, "sp:"+string(ids[1])); err != memcachedtest.ErrMiss {
		t.Errorf("the damaged record's session on n2: %v", err)
	}
}

// Past its bound (64 MiB by default) the hint file takes no more records:
// the node is marked for a full copy, the mark survives a restart of the
// proxy, and the node is copied in full before it serves reads again.
func TestHintFileBoundMarksAFullCopyAcrossARestart(t *testing.T) {
	if testing.Short() { // make test and CI never pass -short: they run it
		t.Skip("writes 64 MiB of hints")
	}
	n1, n2 := memcachedtest.StartMB(t, 256), memcachedtest.StartMB(t, 256)
	big := strings.Repeat("x", 60000)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-V", big)
	}))
	t.Cleanup(app.Close)
	// Not the shipped 100ms timeout: at load 10 to 50 on two cores the
	// healthy n1 timed out now and then under these 60 kB writes, and
	// with n2 away too every node was down, so the writes went to the hot
	// tier, not to n2's hint file, and it never reached its bound. The
	// frozen n2 is still found down, at its first write.
	cfg := hintsConfig(app.URL, n1, n2) + "    timeout: 2s\n"
	p := startProcess(t, cfg)
	n2.Freeze()
	var last string
	for i := 0; i < 1200 && !strings.Contains(p.stderr(), "missed writes no longer recorded"); i++ {
		_, last = askOK(t, p, "/", "")
	}
	if !strings.Contains(p.stderr(), "missed writes no longer recorded") {
		t.Fatalf("no overflow after 1200 writes of 60 kB:\n%s", p.stderr())
	}
	stopProxy(t, p)
	n2.Thaw()
	p = startProcess(t, cfg)
	testutil.WaitFor(t, time.Minute, "n2 copied in full", func() bool {
		return strings.Contains(p.stderr(), `"memcached node up" node=n2`) || strings.Contains(p.stderr(), "node up\" node=n2")
	})
	log := p.stderr()
	if !strings.Contains(log, "full_copy=true") || !strings.Contains(log, "hint file adopted") {
		t.Fatalf("n2 was not copied in full after the restart:\n%s", log)
	}
	if _, err := memcachedtest.Get(n2.Addr, "sp:"+last); err != nil {
		_, err1 := memcachedtest.Get(n1.Addr, "sp:"+last)
		t.Fatalf("n2 lacks the last session written while it was away (%q): %v (n1: %v)\n%s", last, err, err1, log)
	}
}

// Two proxies share one state_dir: each holds its own hint files locked.
// One is killed with hints pending; a third proxy starting adopts the dead
// one's file, not the live one's, and replays it when n2 returns.
func TestSharedStateDirAdoptsOrphans(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	app := sessionBackend(t)
	cfg := hintsConfig(app.URL, n1, n2)
	a := startProcess(t, cfg)
	aFiles, _ := filepath.Glob(filepath.Join(hintDir(t), "n2.*.hints"))
	b := startProcess(t, cfg)
	all, _ := filepath.Glob(filepath.Join(hintDir(t), "n2.*.hints"))
	if len(aFiles) != 1 || len(all) != 2 {
		t.Fatalf("n2's hint files: %v, then %v", aFiles, all)
	}
	n2.Freeze()
	_, sa := askOK(t, a, "/set?v=a", "")
	_, sb := askOK(t, b, "/set?v=b", "")
	a.cmd.Process.Kill() // a crash: its files are orphans
	a.wait(10 * time.Second)

	c := startProcess(t, cfg)
	log := c.stderr()
	if !strings.Contains(log, "hint file adopted") || !strings.Contains(log, "file="+aFiles[0]) {
		t.Fatalf("the dead proxy's file %s was not adopted:\n%s", aFiles[0], log)
	}
	for _, f := range all {
		_, err := os.Stat(f)
		if f == aFiles[0] && err == nil {
			t.Errorf("the adopted file %s is still there", f)
		}
		if f != aFiles[0] && err != nil {
			t.Errorf("the live proxy's file %s: %v", f, err)
		}
	}
	n2.Thaw()
	testutil.WaitFor(t, 20*time.Second, "n2 given the dead proxy's write", func() bool {
		_, err := memcachedtest.Get(n2.Addr, "sp:"+sa)
		return err == nil
	})
	_ = sb
}

// A state_dir that cannot be created stops the start with exit 1 and a
// message that names it.
func TestUnusableStateDirExits1(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	app := sessionBackend(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, nil, 0o600)
	config := filepath.Join(t.TempDir(), "sp.yaml")
	cfg := strings.ReplaceAll(hintsConfig(app.URL, n1, n2), "{{listen}}", freeAddr(t))
	os.WriteFile(config, []byte(cfg), 0o600)
	cmd := exec.Command(binary, "run", "-config", config)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+file) // the default state_dir lies under a file
	out, err := cmd.CombinedOutput()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if code != 1 || !strings.Contains(string(out), "state_dir "+filepath.Join(file, "sessionproxy")+" cannot be used") {
		t.Fatalf("exit %d (%v), output:\n%s", code, err, out)
	}
}
