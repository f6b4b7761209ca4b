package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
	"sessionproxy/sessionstore"
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessionproxy-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sessionproxy")
	// Proxies with memcached nodes keep hint files in their state_dir
	// (by default under $XDG_STATE_HOME or $HOME): never the runner's
	// own. startBinary gives each test a directory of its own.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	os.Unsetenv("STATE_DIRECTORY")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sessionproxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is the sessionproxy binary running with a config file.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	config string
	addr   string
	admin  string
	mu     sync.Mutex
	log    strings.Builder
	exited chan int
}

func (p *process) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitLog waits up to 10s for the process's standard error to hold want
// (the access log is flushed every second), and fails the test with the
// log if it never does.
func waitLog(t *testing.T, p *process, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q:\n%s", want, p.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

// startProcess writes config (with {{listen}} replaced) and runs the binary.
func startProcess(t *testing.T, config string) *process {
	t.Helper()
	return startBinary(t, binary, config)
}

// startBinary is startProcess with another build of sessionproxy. It
// returns once the proxy accepts connections on its listener and, if the
// config has one, its admin listener.
//
// The addresses are free when chosen but not held: another process on the
// machine (an outgoing connection takes its port from the same range) may
// take one before the proxy binds it, and the proxy then exits with
// "address already in use". It is started again on fresh addresses, as a
// loaded CI machine running every package at once does now and then.
func startBinary(t *testing.T, bin, config string) *process {
	t.Helper()
	for try := 1; ; try++ {
		p, inUse := tryStartBinary(t, bin, config)
		if p != nil {
			return p
		}
		if !inUse || try == 3 {
			t.Fatalf("sessionproxy did not start (try %d)", try)
		}
	}
}

// tryStartBinary starts bin on fresh addresses and waits for it to
// listen. It returns nil, and whether an address was taken meanwhile, if
// the proxy exits first; it fails the test if it neither listens nor
// exits within 30s.
func tryStartBinary(t *testing.T, bin, config string) (_ *process, inUse bool) {
	t.Helper()
	p := &process{t: t, addr: freeAddr(t), admin: freeAddr(t), exited: make(chan int, 1)}
	p.config = filepath.Join(t.TempDir(), "sp.yaml")
	p.write(config)
	p.cmd = exec.Command(bin, "run", "-config", p.config)
	p.cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+stateHome(t))
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errPipe, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to its end first
		p.cmd.Wait()
		p.exited <- p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("sessionproxy stderr:\n%s", p.stderr())
		}
	})
	addrs := []string{p.addr}
	if strings.Contains(config, "{{admin}}") {
		addrs = append(addrs, p.admin)
	}
	// 30s: a -race build starting at load 10 to 50 on two cores.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case code := <-p.exited:
			p.exited <- code // for wait, should a caller want it
			log := p.stderr()
			t.Logf("sessionproxy exited %d before it listened:\n%s", code, log)
			return nil, strings.Contains(log, "address already in use")
		default:
		}
		if listening(addrs) {
			return p, false
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessionproxy did not start:\n%s", p.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening reports whether every one of addrs accepts a connection.
func listening(addrs []string) bool {
	for _, a := range addrs {
		c, err := net.Dial("tcp", a)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

var stateHomes sync.Map // *testing.T -> string

// stateHome is the $XDG_STATE_HOME of the proxies a test starts: one per
// test, so that the proxies of one test share their default state_dir (as
// a restarted proxy does) and those of different tests never do.
func stateHome(t *testing.T) string {
	if d, ok := stateHomes.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	stateHomes.Store(t, d)
	t.Cleanup(func() { stateHomes.Delete(t) })
	return d
}

func (p *process) write(config string) {
	config = strings.ReplaceAll(config, "{{listen}}", p.addr)
	config = strings.ReplaceAll(config, "{{admin}}", p.admin)
	if err := os.WriteFile(p.config, []byte(config), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

func (p *process) signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) }

func (p *process) wait(d time.Duration) int {
	select {
	case code := <-p.exited:
		return code
	case <-time.After(d):
		p.t.Fatalf("sessionproxy did not exit within %v", d)
		return -1
	}
}

// namedBackend answers with its name.
func namedBackend(t *testing.T, name string, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if d := r.URL.Query().Get("sleep"); d != "" {
			dur, _ := time.ParseDuration(d)
			time.Sleep(dur)
		}
		time.Sleep(delay)
		if v := r.URL.Query().Get("set"); v != "" {
			w.Header().Set("X-Session-Set-V", v)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

const baseConfig = `listen: "{{listen}}"
backends:
%s`

func backendsYAML(urls ...string) string {
	var b strings.Builder
	for _, u := range urls {
		fmt.Fprintf(&b, "  - url: %q\n", u)
	}
	return b.String()
}

func TestReloadUnderLoad(t *testing.T) {
	a, _ := namedBackend(t, "A", 0)
	b, _ := namedBackend(t, "B", 0)
	c, cHits := namedBackend(t, "C", 0)
	p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(a.URL, b.URL)))

	var failures, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second} // keep-alive connections across the reload
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + p.addr + "/")
				total.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	p.write(fmt.Sprintf(baseConfig, backendsYAML(a.URL, b.URL, c.URL)))
	p.signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for cHits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if cHits.Load() == 0 {
		t.Fatal("the backend added by the reload got no traffic")
	}
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed across the reload", failures.Load(), total.Load())
	}
	if !strings.Contains(p.stderr(), "config reloaded") {
		t.Fatal("reload not logged")
	}
}

func TestInvalidReloadKeepsServing(t *testing.T) {
	a, _ := namedBackend(t, "A", 0)
	p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(a.URL)))
	p.write("listen: \"{{listen}}\"\nbackends:\n  - url: ftp://nope\nretries: lots\n")
	p.signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		resp, err := http.Get("http://" + p.addr + "/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request after an invalid reload: %v", err)
		}
		resp.Body.Close()
	}
	log := p.stderr()
	if !strings.Contains(log, "reload failed, keeping the old config") || !strings.Contains(log, "line=4") {
		t.Fatalf("invalid reload not logged with its line:\n%s", log)
	}
}

func TestSIGTERMFinishesInFlight(t *testing.T) {
	slow, _ := namedBackend(t, "slow", 0)
	p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(slow.URL)))
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + p.addr + "/?sleep=800ms")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(200 * time.Millisecond)
	p.signal(syscall.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond); err == nil {
		c.Close()
		t.Error("still accepting connections after SIGTERM")
	}
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "slow" {
		t.Fatalf("in-flight request across SIGTERM: %+v", r)
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	slow, _ := namedBackend(t, "slow", 0)
	p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(slow.URL)))
	go http.Get("http://" + p.addr + "/?sleep=5s")
	time.Sleep(200 * time.Millisecond)
	p.signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	p.signal(syscall.SIGINT)
	p.wait(3 * time.Second)
	if time.Since(start) > 2*time.Second {
		t.Fatal("second signal did not exit at once")
	}
}

func TestAsyncWriteThenSIGTERMIsStored(t *testing.T) {
	n1 := memcachedtest.Start(t)
	app, _ := namedBackend(t, "A", 0)
	p := startProcess(t, "admin: \"{{admin}}\"\n"+fmt.Sprintf(baseConfig, backendsYAML(app.URL))+fmt.Sprintf(`session:
  write: async
  memcached:
    nodes: ["n1:%s"]
    timeout: 500ms
`, n1.Addr))
	resp, err := http.Get("http://" + p.addr + "/?set=hello")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request: %v", err)
	}
	resp.Body.Close()
	metrics, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(m), "\nsessionproxy_session_async_pending ") {
		t.Fatalf("no async metric in /metrics")
	}
	p.signal(syscall.SIGTERM) // at once: the write may still be queued
	var id string
	for _, c := range resp.Cookies() {
		if c.Name == "SPSESSIONID" {
			id = c.Value
		}
	}
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	it, err := memcachedtest.Get(n1.Addr, "sp:"+id)
	if err != nil {
		t.Fatalf("async write not in memcached after SIGTERM: %v", err)
	}
	var s sessionstore.Session
	if err := s.Decode(it.Value); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("v"); string(v) != "hello" {
		t.Fatalf("stored v=%q, want hello", v)
	}
}

func TestAccessLogFormats(t *testing.T) {
	app, _ := namedBackend(t, "A", 0)
	for _, format := range []string{"text", "json", "combined"} {
		t.Run(format, func(t *testing.T) {
			p := startProcess(t, strings.Replace(fmt.Sprintf(baseConfig, backendsYAML(app.URL)), "backends:", "access_log: "+format+"\nbackends:", 1))
			req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/page?q=1", nil)
			req.Header.Set("X-Request-Id", "rid-42")
			req.Header.Set("User-Agent", "test-agent")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			p.signal(syscall.SIGTERM)
			p.wait(10 * time.Second)
			log := p.stderr()
			want := map[string][]string{
				"text":     {"msg=access", "method=GET", "path=/page", "status=200", "request_id=rid-42", "backend=" + app.URL, "session=", "duration="},
				"json":     {`"msg":"access"`, `"status":200`, `"request_id":"rid-42"`, `"path":"/page"`},
				"combined": {`127.0.0.1 - - [`, `] "GET /page?q=1 HTTP/1.1" 200 1 "-" "test-agent"`},
			}[format]
			for _, w := range want {
				if !strings.Contains(log, w) {
					t.Errorf("%s access log lacks %q:\n%s", format, w, log)
				}
			}
		})
	}
}

// SIGTERM while the start-up reconciliation copies many sessions to a node
// that lacks them: the process exits without finishing the copy (which
// would take it several seconds here, minutes over millions of sessions).
func TestSIGTERMDuringStartupCopyExits(t *testing.T) {
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	const sessions = 100000
	loadRaw(t, n1.Addr, sessions)
	app, _ := namedBackend(t, "A", 0)
	p := startProcess(t, "admin: \"{{admin}}\"\n"+fmt.Sprintf(baseConfig, backendsYAML(app.URL))+fmt.Sprintf(`session:
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, n1.Addr, n2.Addr))
	testutil.WaitFor(t, time.Minute, "the start-up copy to n2 under way", func() bool {
		return nodeCopied(t, p.admin, "n2") > 0
	})
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if held := currItems(t, n2.Addr); held >= sessions {
		t.Fatalf("n2 holds all %d sessions: the process exited only after the whole copy", held)
	} else {
		t.Logf("exited with %d of %d sessions copied", held, sessions)
	}
}

// loadRaw writes n sessions straight to a memcached node, pipelined.
func loadRaw(t *testing.T, addr string, n int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	now := time.Now()
	for i := 0; i < n; i++ {
		id := sessionstore.AppendNewID(nil)
		s := sessionstore.Session{ID: id, Created: now.UnixMilli(), Version: 1, Touched: now.Unix(), Expires: now.Unix() + 3600}
		v := s.AppendEncode(nil)
		fmt.Fprintf(w, "set sp:%s 0 3600 %d noreply\r\n%s\r\n", id, len(v), v)
	}
	w.WriteString("mn\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "MN\r\n" {
		t.Fatalf("loading %d sessions: %q %v", n, line, err)
	}
	if held := currItems(t, addr); held != n {
		t.Fatalf("node holds %d of the %d sessions loaded", held, n)
	}
}

// nodeCopied is the copied count of one memcached node in /status.
func nodeCopied(t *testing.T, admin, id string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		return 0 // not listening yet
	}
	defer resp.Body.Close()
	var st struct {
		Memcached []struct {
			ID     string
			Copied int64
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Memcached {
		if n.ID == id {
			return n.Copied
		}
	}
	return 0
}

// currItems is memcached's count of the items a node holds.
func currItems(t *testing.T, addr string) int {
	t.Helper()
	return int(memcachedtest.Stat(t, addr, "curr_items"))
}
