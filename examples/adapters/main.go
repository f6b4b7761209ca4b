// Command adapters shows a framework adapter at work in one command: two
// processes of a small app of the chosen framework, whose session code is
// the framework's own, behind the sessionproxy binary, which keeps their
// one session.
//
//	go run ./examples/adapters               # Flask (python3-flask)
//	go run ./examples/adapters -app django   # Django (python3-django)
//	go run ./examples/adapters -app express  # Express + passport (npm ci in adapters/express)
//
// The proxy keeps sessions in its own process (the embedded local store)
// unless -memcached names nodes. Ctrl-C stops everything.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// framework is what differs between the apps: how to check that the
// framework is installed, how to prepare and start one process.
type framework struct {
	// missing says what to install, or "" if everything is there.
	missing func(repo string) string
	// setup runs once before the processes start (Django's database).
	setup func(repo, tmp string) error
	// command is one process named name listening on addr.
	command func(repo, tmp, name, addr string) *exec.Cmd
	// try is what to try on the page.
	try string
}

var frameworks = map[string]framework{
	"flask": {
		missing: func(string) string {
			if python("flask") == "" {
				return "Flask is not installed for python3: sudo apt-get install -y python3-flask"
			}
			return ""
		},
		command: func(repo, _, name, addr string) *exec.Cmd {
			return pythonCmd(repo, "flask", filepath.Join(repo, "examples/adapters/flask/app.py"), "--listen", addr, "--name", name)
		},
		try: "log in (a new session ID, the visits stay), log out (the session ends)",
	},
	"django": {
		missing: func(string) string {
			if python("django") == "" {
				return "Django is not installed for python3: sudo apt-get install -y python3-django"
			}
			return ""
		},
		setup: func(repo, tmp string) error {
			cmd := pythonCmd(repo, "django", filepath.Join(repo, "examples/adapters/django/app.py"), "--db", filepath.Join(tmp, "db.sqlite3"), "--setup")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("setting up Django's database: %v\n%s", err, out)
			}
			return nil
		},
		command: func(repo, tmp, name, addr string) *exec.Cmd {
			return pythonCmd(repo, "django", filepath.Join(repo, "examples/adapters/django/app.py"), "--db", filepath.Join(tmp, "db.sqlite3"), "--listen", addr, "--name", name)
		},
		try: "log in as ann, password secret (login() rotates the session ID), log out (logout() ends it)",
	},
	"express": {
		missing: func(repo string) string {
			if _, err := exec.LookPath("node"); err != nil {
				return "Node.js is not installed: sudo apt-get install -y nodejs npm"
			}
			for _, dep := range []string{"express", "passport", "passport-local"} {
				if _, err := os.Stat(filepath.Join(repo, "adapters/express/node_modules", dep, "package.json")); err != nil {
					return "Express and passport are not installed: (cd adapters/express && npm ci)"
				}
			}
			return ""
		},
		command: func(repo, _, name, addr string) *exec.Cmd {
			// Node's default of 16 KiB of request headers is less than the
			// proxy's max_size (adapters/express/README.md).
			cmd := exec.Command("node", "--max-http-header-size=81920", filepath.Join(repo, "examples/adapters/express/app.js"), "--listen", addr, "--name", name)
			// The app's require('express') finds the adapter's dependencies.
			cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(repo, "adapters/express/node_modules"))
			return cmd
		},
		try: "log in as ann, password secret (passport's req.login() rotates the session ID), log out (req.logout() ends it)",
	},
}

// python returns a python3 that can import module: Debian's python3-*
// packages install into /usr/bin/python3, which need not be the first
// python3 on PATH (pyenv's, a virtualenv's).
func python(module string) string {
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if exec.Command(p, "-c", "import "+module).Run() == nil {
			return p
		}
	}
	return ""
}

func pythonCmd(repo, module string, args ...string) *exec.Cmd {
	cmd := exec.Command(python(module), args...)
	// The adapter from this repository, not an installed copy.
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(repo, "adapters/python"), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	return cmd
}

// repoRoot finds the clone this program belongs to: the directory above
// the working directory holding sessionproxy's go.mod, else the one this
// source file was built from.
func repoRoot() (string, error) {
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && strings.HasPrefix(string(b), "module sessionproxy\n")
	}
	if dir, err := os.Getwd(); err == nil {
		for ; ; dir = filepath.Dir(dir) {
			if isRoot(dir) {
				return dir, nil
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "../.."); isRoot(dir) {
			return filepath.Abs(dir)
		}
	}
	return "", errors.New("run it from a clone of sessionproxy: go run ./examples/adapters")
}

// freeAddrs returns n distinct loopback addresses nothing listens on,
// holding each until all are drawn so that none is handed out twice.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// prefixWriter writes each line of a child's output with its name in
// front, so that four programs' logs can be told apart.
func prefixWriter(w io.Writer, mu *sync.Mutex, name string) io.WriteCloser {
	r, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			mu.Lock()
			fmt.Fprintf(w, "[%s] %s\n", name, sc.Text())
			mu.Unlock()
		}
		io.Copy(io.Discard, r)
	}()
	return pw
}

// waitListen waits until something accepts connections on addr, or the
// process behind it has exited (exited is closed).
func waitListen(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before it listened")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v", addr, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// child is one process this program started.
type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("adapters", flag.ContinueOnError)
	fs.SetOutput(stderr)
	app := fs.String("app", "flask", "the framework: flask, django or express")
	listen := fs.String("listen", "127.0.0.1:8080", "the proxy's listen `address` (port 0: any free port)")
	memcached := fs.String("memcached", "", "memcached `nodes`, comma separated host:port or id:host:port (default: sessions in the proxy's process)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fw, ok := frameworks[*app]
	if !ok || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "adapters: -app is one of flask, django, express (not %q)\n", *app)
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "adapters: "+format+"\n", a...)
		return 1
	}
	repo, err := repoRoot()
	if err != nil {
		return fail("%v", err)
	}
	if msg := fw.missing(repo); msg != "" {
		return fail("%s", msg)
	}
	tmp, err := os.MkdirTemp("", "sessionproxy-adapters-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)

	// Something else on the address (the demo, a second run) would answer
	// the dials that wait for the proxy, and the URL would show it.
	if *listen != "" && !strings.HasSuffix(*listen, ":0") {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fail("%v: stop what listens there or choose another with -listen", err)
		}
		ln.Close()
	}

	fmt.Fprintln(stderr, "adapters: building sessionproxy (go build ./cmd/sessionproxy)")
	bin := filepath.Join(tmp, "sessionproxy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sessionproxy")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return fail("building sessionproxy: %v\n%s", err, out)
	}
	if fw.setup != nil {
		if err := fw.setup(repo, tmp); err != nil {
			return fail("%v", err)
		}
	}

	addrs, err := freeAddrs(3)
	if err != nil {
		return fail("%v", err)
	}
	if host, port, err := net.SplitHostPort(*listen); err == nil && port == "0" {
		*listen = net.JoinHostPort(host, strings.TrimPrefix(addrs[2], "127.0.0.1:"))
	}
	apps := []string{addrs[0], addrs[1]}
	conf := fmt.Sprintf(`# Written by examples/adapters: two %[1]s processes behind the proxy.
listen: %[2]q
# The guide printed below would scroll away under a line per request.
access_log: "off"
backends:
  - url: "http://%[3]s"
  - url: "http://%[4]s"
session:
  ignore: '^/favicon\.ico$'
`, *app, *listen, apps[0], apps[1])
	if *memcached != "" {
		conf += "  memcached:\n    nodes: ["
		for i, n := range strings.Split(*memcached, ",") {
			if i > 0 {
				conf += ", "
			}
			conf += fmt.Sprintf("%q", n)
		}
		conf += "]\n"
	}
	confFile := filepath.Join(tmp, "sessionproxy.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		return fail("%v", err)
	}
	if out, err := exec.Command(bin, "check", "-config", confFile).CombinedOutput(); err != nil {
		return fail("%s", strings.TrimSpace(string(out)))
	}

	var outMu sync.Mutex
	var children []*child
	stopAll := func() {
		for _, c := range children {
			c.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			select {
			case <-c.exited:
			case <-time.After(5 * time.Second):
				c.cmd.Process.Kill()
				<-c.exited
			}
		}
	}
	defer stopAll()
	anyExit := make(chan *child, 4)
	start := func(name string, cmd *exec.Cmd) error {
		w := prefixWriter(stderr, &outMu, name)
		cmd.Stdout, cmd.Stderr = w, w
		// Killed with this program even if it is killed itself: no app
		// is left holding a port.
		// A process group of its own: Ctrl-C in the terminal reaches this
		// program alone, which stops the children in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %v", name, err)
		}
		c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
		children = append(children, c)
		go func() {
			cmd.Wait()
			w.Close()
			close(c.exited)
			anyExit <- c
		}()
		return nil
	}
	for i, addr := range apps {
		name := fmt.Sprintf("%s-%d", *app, i+1)
		if err := start(name, fw.command(repo, tmp, name, addr)); err != nil {
			return fail("%v", err)
		}
	}
	proxy := exec.Command(bin, "run", "-config", confFile)
	// With memcached nodes the proxy keeps hint files in its state
	// directory: this run's are its own, not adopted from or left in
	// ~/.local/state.
	proxy.Env = append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(tmp, "state"), "STATE_DIRECTORY=")
	if err := start("sessionproxy", proxy); err != nil {
		return fail("%v", err)
	}
	for i, addr := range append(apps, *listen) {
		if err := waitListen(addr, children[i].exited, 60*time.Second); err != nil {
			return fail("%s: %v", children[i].name, err)
		}
	}

	store := "the proxy's own process (the embedded local store)"
	if *memcached != "" {
		store = "memcached " + *memcached
	}
	outMu.Lock()
	fmt.Fprintf(stdout, "Two %s processes, %s-1 (%s) and %s-2 (%s), behind sessionproxy; sessions in %s.\n", *app, *app, apps[0], *app, apps[1], store)
	fmt.Fprintf(stdout, "Open http://%s/ and reload: both processes answer in turn, one session, the visits climb.\n", *listen)
	fmt.Fprintf(stdout, "Then %s.\n", fw.try)
	fmt.Fprintf(stdout, "The app's code: examples/adapters/%s/. Ctrl-C stops everything.\n", *app)
	outMu.Unlock()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "adapters: stopping")
		return 0
	case c := <-anyExit:
		return fail("%s exited (%v); stopping the others", c.name, c.cmd.ProcessState)
	}
}
