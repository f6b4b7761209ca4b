// Package memcachedtest starts real memcached processes for tests, on free
// loopback ports, and stops, restarts, freezes and thaws them to test
// failover.
package memcachedtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/rawtcp"
)

// Server is one memcached process listening on 127.0.0.1.
type Server struct {
	Addr string
	t    testing.TB
	cmd  *exec.Cmd
	mb   int // item memory
}

// Start runs memcached on a free loopback port and stops it when the test
// ends. A missing memcached binary fails the test: `make test` installs it,
// and CI must never skip these tests silently.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartMB(t, 64)
}

// StartMB is Start with mb megabytes of item memory instead of 64.
func StartMB(t testing.TB, mb int) *Server {
	t.Helper()
	if _, err := exec.LookPath("memcached"); err != nil {
		t.Fatalf("memcached is not installed (run `make deps`, or apt-get install memcached): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{Addr: addr, t: t, mb: mb}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", strconv.Itoa(s.mb), "-t", "2", "-c", "1024"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root otherwise
	}
	for try := 0; try < 3; try++ {
		cmd := exec.Command("memcached", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("starting memcached: %v", err)
		}
		s.cmd = cmd
		if s.waitReady(3 * time.Second) {
			return
		}
		s.Stop()
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("memcached on %s did not start", s.Addr)
}

func (s *Server) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "version\r\n")
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			c.Close()
			if n > 8 && string(buf[:8]) == "VERSION " {
				return true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Stop kills the process (SIGKILL: a crash, not a clean exit).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a frozen process must run to die
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Restart kills the process and starts a new, empty one on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Freeze stops the process with SIGSTOP: connections are accepted by the
// kernel but never answered, like a partitioned or hung node.
// It returns once every thread of memcached is stopped: SIGSTOP is
// delivered asynchronously, and a thread still running would answer.
func (s *Server) Freeze() {
	s.signal(syscall.SIGSTOP)
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for !stopped(s.cmd.Process.Pid) {
		if time.Now().After(deadline) {
			s.t.Fatalf("memcached %s did not stop after SIGSTOP", s.Addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// stopped reports whether every thread of process pid is stopped.
func stopped(pid int) bool {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			return false
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Thaw resumes a frozen process with its data intact.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
	}
}

// PID returns the process ID, for tests that signal it themselves.
func (s *Server) PID() string {
	if s.cmd == nil || s.cmd.Process == nil {
		return ""
	}
	return strconv.Itoa(s.cmd.Process.Pid)
}

// Stat returns one counter of the stats of the memcached at addr
// (curr_items, bytes_written, total_connections, ...), failing t if it
// has none of that name.
func Stat(t testing.TB, addr, name string) int64 {
	t.Helper()
	c := rawtcp.Dial(t, addr)
	defer c.Close()
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "STAT "+name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("stat %s of %s: %v", name, addr, err)
			}
			return n
		}
		if sc.Text() == "END" {
			break
		}
	}
	t.Fatalf("no %s in the stats of %s (%v)", name, addr, sc.Err())
	return 0
}

// Item is a value and its client flags as memcached holds them.
type Item struct {
	Value []byte
	Flags uint32
}

// ErrMiss is Get's error for a key the server does not hold.
var ErrMiss = errors.New("memcachedtest: cache miss")

// Get reads key from the memcached at addr in the text protocol, on a
// connection of its own: what another client reads. A key the server does
// not hold is ErrMiss.
func Get(addr, key string) (*Item, error) {
	items, err := GetMulti(addr, key)
	if err != nil {
		return nil, err
	}
	if it := items[key]; it != nil {
		return it, nil
	}
	return nil, ErrMiss
}

// GetMulti reads keys from the memcached at addr in one text-protocol get;
// the keys it does not hold are absent from the map.
func GetMulti(addr string, keys ...string) (map[string]*Item, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "get %s\r\n", strings.Join(keys, " ")); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	items := map[string]*Item{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == "END\r\n" {
			return items, nil
		}
		var key string
		var flags uint32
		var size int
		if _, err := fmt.Sscanf(line, "VALUE %s %d %d", &key, &flags, &size); err != nil {
			return nil, fmt.Errorf("memcachedtest: get answered %q", line)
		}
		val := make([]byte, size+2)
		if _, err := io.ReadFull(br, val); err != nil {
			return nil, err
		}
		items[key] = &Item{Value: val[:size], Flags: flags}
	}
}

// Set stores val under key, with client flags, on the memcached at addr in
// the text protocol, as another client would write it.
func Set(addr, key string, val []byte, flags uint32) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "set %s %d 0 %d\r\n%s\r\n", key, flags, len(val), val); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "STORED\r\n" {
		return fmt.Errorf("memcachedtest: set %s answered %q", key, line)
	}
	return nil
}
