// Package apptest starts the real programs that end-to-end tests put
// behind the proxy (framework apps in Python, Node.js, Java), collects
// their output and waits for them to listen. The adapters' tests share it.
package apptest

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
)

// Output collects a process's output while it runs. Safe for concurrent
// use.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns what was written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Run starts argv with env added to this process's environment and kills
// it when the test ends (or when this process dies: a test binary killed
// by its timeout leaves no app behind holding a port). Its output is
// logged if the test failed.
func Run(t testing.TB, name string, env []string, argv ...string) *Output {
	t.Helper()
	out := &Output{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, out.String())
		}
	})
	return out
}

// WaitListen waits up to timeout for something to accept connections on
// addr.
func WaitListen(t testing.TB, addr, what string, timeout time.Duration) {
	t.Helper()
	testutil.WaitFor(t, timeout, what+" listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// FreeAddrs returns n distinct loopback addresses that nothing listens
// on. Drawing them one at a time may hand out a port again before the
// app given it has bound it (Python takes a while to start): each
// listener is held until all are drawn.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// Python returns a python3 that can import every module named. Debian's
// python3-flask and python3-django install into /usr/bin/python3, which
// need not be the python3 first on PATH (pyenv's, a virtualenv's): that
// one is tried first, then PATH's. None is a failure, not a skip: `make
// deps` installs them.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	imports := "import " + strings.Join(modules, ", ")
	for _, p := range candidates {
		if exec.Command(p, "-c", imports).Run() == nil {
			return p
		}
	}
	t.Fatalf("no python3 that can %q among %v: run `make deps` (Debian's python3-* packages)", imports, candidates)
	return ""
}

// Stored returns the attributes the proxy's store holds for session id,
// through the admin listener at admin (GET /sessions/<id>), or nil if it
// holds no such session.
func Stored(t testing.TB, admin, id string) map[string]string {
	t.Helper()
	resp, err := http.Get(admin + "/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var doc struct {
		Attributes map[string]string `json:"attributes"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&doc) != nil {
		t.Fatalf("GET /sessions/%s: %d", id, resp.StatusCode)
	}
	return doc.Attributes
}

// StartProxy runs `sessionproxy check` then `sessionproxy run` on the
// config file conf with the binary bin, and waits until it listens on
// listen. The proxy gets a state directory of its own ($XDG_STATE_HOME in
// a temporary directory): with memcached nodes it keeps hint files there
// by default, and a shared one (the runner's ~/.local/state) would let
// one test's proxy adopt another's hints for nodes of the same ID.
func StartProxy(t testing.TB, bin, conf, listen string) *Output {
	t.Helper()
	if out, err := exec.Command(bin, "check", "-config", conf).CombinedOutput(); err != nil {
		t.Fatalf("sessionproxy check: %v\n%s", err, out)
	}
	out := Run(t, "sessionproxy", []string{"XDG_STATE_HOME=" + t.TempDir(), "STATE_DIRECTORY="}, bin, "run", "-config", conf)
	WaitListen(t, listen, "sessionproxy", 30*time.Second)
	return out
}
