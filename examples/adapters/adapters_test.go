package main

// The test runs the program as a user does (built with `go build`, which
// `go run` does too, so that the signal reaches it and not the go tool),
// reads the URL it prints and uses the site through it as a browser
// would: cookies in a jar, forms posted, redirects followed.

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
)

// page is the JSON form of the example apps' page.
type page struct {
	Name     string   `json:"name"`
	Sid      string   `json:"sid"`
	Visits   int      `json:"visits"`
	User     string   `json:"user"`
	Messages []string `json:"messages"`
}

type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

func (b *browser) do(method, path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(form.Encode()))
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p page
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &p) != nil {
		b.t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, body)
	}
	return p
}

// html gets path as a browser does and returns the HTML page.
func (b *browser) html(path string) string {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		b.t.Fatalf("GET %s: %d %s %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return string(body)
}

func (b *browser) cookie() string {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "SPSESSIONID" {
			return c.Value
		}
	}
	return ""
}

// withCookie is a new browser holding only the session cookie id: an
// old ID replayed.
func withCookie(t *testing.T, base, id string) *browser {
	b := newBrowser(t, base)
	u, _ := url.Parse(base)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "SPSESSIONID", Value: id}})
	return b
}

var (
	urlLine  = regexp.MustCompile(`Open (http://127\.0\.0\.1:\d+)/`)
	appAddrs = regexp.MustCompile(`\((127\.0\.0\.1:\d+)\)`)
)

func TestAdaptersExample(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "adapters")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, app := range []string{"flask", "django", "express"} {
		t.Run(app, func(t *testing.T) {
			switch app {
			case "flask", "django":
				apptest.Python(t, app) // a failure naming `make deps`, as the adapters' tests
			case "express":
				npmCI(t)
			}
			testExample(t, bin, app)
		})
	}
	t.Run("flask with -memcached", func(t *testing.T) {
		apptest.Python(t, "flask")
		mc := memcachedtest.Start(t)
		testExample(t, bin, "flask", "-memcached", "n1:"+mc.Addr)
		// The sessions went to that node, not to the proxy's own store.
		if sets := memcachedtest.Stat(t, mc.Addr, "cmd_set"); sets == 0 {
			t.Fatalf("memcached took no writes: -memcached was not used")
		}
	})
}

// npmCI installs the Express adapter's dev dependencies (express,
// passport) as its README says, if they are missing.
func npmCI(t *testing.T) {
	for _, dep := range []string{"express", "passport", "passport-local"} {
		if _, err := os.Stat(filepath.Join("../../adapters/express/node_modules", dep, "package.json")); err != nil {
			cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
			cmd.Dir = "../../adapters/express"
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("npm ci in adapters/express: %v (`make deps` installs npm)\n%s", err, out)
			}
			return
		}
	}
}

func testExample(t *testing.T, bin, app string, args ...string) {
	cmd := exec.Command(bin, append([]string{"-app", app, "-listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &apptest.Output{}
	cmd.Stderr = logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, done := make(chan error, 1), make(chan struct{})
	guide := &apptest.Output{}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			guide.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		// Ctrl-C, so that a failed run too removes its temporary
		// directory; killed if it does not stop.
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("the program printed:\n%s\nand logged:\n%s", guide.String(), logs.String())
		}
	})

	var base string
	var apps []string
	timeout := time.After(120 * time.Second)
	for base == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the program exited without printing a URL")
			}
			if m := appAddrs.FindAllStringSubmatch(line, -1); len(m) == 2 && apps == nil {
				apps = []string{m[0][1], m[1][1]}
			}
			if m := urlLine.FindStringSubmatch(line); m != nil {
				base = m[1]
			}
		case <-timeout:
			t.Fatalf("no URL printed in 120 s")
		}
	}
	if len(apps) != 2 {
		t.Fatalf("the guide names app processes %v, want two addresses before the URL", apps)
	}

	b := newBrowser(t, base)
	// The page a browser gets: HTML naming the process and the session.
	html := b.html("/")
	if first := b.cookie(); first == "" || !strings.Contains(html, first) || !strings.Contains(html, app+"-") {
		t.Fatalf("the HTML page (session %q):\n%s", first, html)
	}
	b = newBrowser(t, base)
	seen, sid := map[string]bool{}, ""
	for i := 1; i <= 4; i++ {
		p := b.do(http.MethodGet, "/", nil)
		if p.Visits != i || (i > 1 && p.Sid != sid) || p.User != "" {
			t.Fatalf("visit %d: %+v (session %q before)", i, p, sid)
		}
		sid = p.Sid
		seen[p.Name] = true
	}
	if len(seen) != 2 || b.cookie() != sid {
		t.Fatalf("four visits reached %v with cookie %q, session %q: want both %s processes, one session", seen, b.cookie(), sid, app)
	}

	in := b.do(http.MethodPost, "/login", url.Values{"username": {"ann"}, "password": {"secret"}})
	if in.User != "ann" || in.Sid == sid || b.cookie() != in.Sid {
		t.Fatalf("login: %+v, cookie %q, session before %q: want ann under a new ID", in, b.cookie(), sid)
	}
	if app != "express" && in.Visits != 5 {
		// passport's req.login() regenerates: express-session's new,
		// empty session (keepSessionInfo is off), the visits start over.
		t.Fatalf("login: %+v: want the visits kept (5)", in)
	}
	if p := withCookie(t, base, sid).do(http.MethodGet, "/", nil); p.Sid == sid || p.User != "" {
		t.Fatalf("the ID before login still works: %+v", p)
	}
	for i := 0; i < 2; i++ {
		if p := b.do(http.MethodGet, "/", nil); p.User != "ann" || p.Sid != in.Sid || p.Visits != in.Visits+1+i {
			t.Fatalf("logged in, visit %d: %+v after %+v", i, p, in)
		}
	}

	out := b.do(http.MethodPost, "/logout", nil)
	if out.User != "" || out.Sid == in.Sid || out.Visits != 1 {
		t.Fatalf("logout: %+v after %+v: want a new session", out, in)
	}
	if p := withCookie(t, base, in.Sid).do(http.MethodGet, "/", nil); p.Sid == in.Sid || p.User != "" || p.Visits != 1 {
		t.Fatalf("the logged-out ID still works: %+v", p)
	}

	// Ctrl-C: the program stops, and its apps with it.
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("on Ctrl-C: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after Ctrl-C")
	}
	for _, a := range append(apps, strings.TrimPrefix(base, "http://")) {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Ctrl-C", a)
		}
	}
}
