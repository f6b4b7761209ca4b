// Package phpfpmtest starts a real PHP-FPM for tests: one pool on a free
// 127.0.0.1 port and one on a Unix socket, serving the scripts of a
// directory the test fills.
package phpfpmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one php-fpm master process with its two pools.
type Server struct {
	Addr   string // the TCP pool, host:port
	Socket string // the Unix socket pool's path
	Root   string // the scripts' directory
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    strings.Builder
}

// Binary finds php-fpm (Debian names it php-fpm8.2 and the like). A
// missing one fails the test: `make deps` installs it.
func Binary(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"php-fpm", "php-fpm8.4", "php-fpm8.3", "php-fpm8.2", "php-fpm8.1"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := "/usr/sbin/" + name; fileExists(p) {
			return p
		}
	}
	t.Fatal("php-fpm is not installed (run `make deps`, or apt-get install php-fpm)")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start runs php-fpm in the foreground over root and stops it when the
// test ends. ini is added to both pools as php_admin_value lines (name to
// value), e.g. auto_prepend_file.
//
// The TCP pool's port is free when chosen but not held: another process
// (an outgoing connection takes its port from the same range) may take it
// before php-fpm binds it, and php-fpm then exits. It is started again on
// a fresh port.
func Start(t testing.TB, root string, ini map[string]string) *Server {
	t.Helper()
	for try := 1; ; try++ {
		if s := start(t, root, ini, try == 3); s != nil {
			return s
		}
	}
}

// inUse is php-fpm's complaint about a port another process holds.
const inUse = "Address already in use"

// start is one try of Start. It returns nil if php-fpm found its port
// taken, unless last: then it fails the test.
func start(t testing.TB, root string, ini map[string]string, last bool) *Server {
	t.Helper()
	bin := Binary(t)
	dir, err := os.MkdirTemp("", "fpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Socket: filepath.Join(dir, "fpm.sock"), Root: root}
	ln.Close()
	var extra strings.Builder
	for k, v := range ini {
		fmt.Fprintf(&extra, "php_admin_value[%s] = %s\n", k, v)
	}
	pool := func(name, listen string) string {
		return fmt.Sprintf(`[%s]
listen = %s
listen.mode = 0666
pm = static
pm.max_children = 4
catch_workers_output = yes
decorate_workers_output = no
clear_env = yes
php_admin_flag[log_errors] = on
php_admin_value[memory_limit] = 64M
php_admin_value[upload_max_filesize] = 64M
php_admin_value[post_max_size] = 64M
php_admin_value[output_buffering] = 4096
%s`, name, listen, extra.String())
	}
	conf := fmt.Sprintf("[global]\npid = %s\nerror_log = /proc/self/fd/2\ndaemonize = no\nlog_level = warning\n\n%s\n%s",
		filepath.Join(dir, "fpm.pid"), pool("tcp", s.Addr), pool("unix", s.Socket))
	confPath := filepath.Join(dir, "fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-F", "-y", confPath}
	if os.Geteuid() == 0 {
		args = append(args, "-R") // php-fpm refuses to run as root otherwise
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stderr = &lockedWriter{s}
	s.cmd.Stdout = &lockedWriter{s}
	// Its own process group: the workers, which hold the output pipe
	// too, are killed with the master.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s.cmd.WaitDelay = 2 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Wait()
		if t.Failed() {
			t.Logf("php-fpm output:\n%s", s.Output())
		}
	})
	// 30s: php-fpm and its workers starting at load 10 to 50 on two cores.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c1, err1 := net.Dial("tcp", s.Addr)
		c2, err2 := net.Dial("unix", s.Socket)
		if err1 == nil {
			c1.Close()
		}
		if err2 == nil {
			c2.Close()
		}
		if err1 == nil && err2 == nil {
			return s
		}
		if !last && strings.Contains(s.Output(), inUse) {
			t.Logf("php-fpm found its port taken, starting it again:\n%s", s.Output())
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			return nil
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm did not start: %v %v\n%s", err1, err2, s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is what php-fpm and its workers wrote so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(b)
}
