// Package redistest starts real redis-server processes for tests, on free
// loopback ports in temporary directories, standalone or as a Redis
// Cluster, and kills and restarts them to test failover.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
)

// Options configure a server. The zero value is a plain standalone server
// without persistence.
type Options struct {
	AOF      bool     // appendonly yes, fsync always: a restart keeps every acknowledged write
	Cluster  bool     // cluster-enabled, for Cluster
	Password string   // requirepass
	Args     []string // more redis-server arguments
}

// Server is one redis-server process listening on 127.0.0.1.
type Server struct {
	Addr string
	Port string
	Dir  string // its working directory (AOF, nodes.conf)
	opts Options
	t    testing.TB
	cmd  *exec.Cmd
}

// need fails the test if name is not installed: `make test` installs
// redis-server and redis-tools, and these tests must never skip silently.
func need(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (run `make deps`, or apt-get install redis-server redis-tools): %v", name, err)
	}
}

// Start runs redis-server on a free loopback port and kills it when the
// test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	need(t, "redis-server")
	need(t, "redis-cli")
	s := &Server{Dir: t.TempDir(), opts: o, t: t}
	t.Cleanup(s.Stop)
	// A free port is not held: another process may take it, or, for a
	// cluster node, its bus port (the port + 10000, seen taken in a
	// clean-clone CI run), before redis-server binds them. Such a start
	// is tried again on other ports.
	for try := 1; ; try++ {
		s.Addr = freeAddr(t, o.Cluster)
		_, s.Port, _ = net.SplitHostPort(s.Addr)
		if s.tryStart() {
			return s
		}
		log, _ := os.ReadFile(s.Dir + "/redis.log")
		if try == 5 || !strings.Contains(string(log), "Address already in use") {
			t.Fatalf("redis-server on %s did not start: %s", s.Addr, log)
		}
		os.Remove(s.Dir + "/redis.log")
	}
}

// freeAddr returns a free loopback address; for a cluster node, one whose
// bus port (the port + 10000) is free too.
func freeAddr(t testing.TB, cluster bool) string {
	t.Helper()
	for {
		a := testutil.FreeAddr(t)
		if !cluster {
			return a
		}
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if port+10000 > 65535 {
			continue
		}
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000))); err == nil {
			ln.Close()
			return a
		}
	}
}

func (s *Server) args() []string {
	a := []string{"--bind", "127.0.0.1", "--port", s.Port, "--dir", s.Dir, "--save", "",
		"--daemonize", "no", "--protected-mode", "no", "--repl-diskless-sync-delay", "0", "--loglevel", "warning", "--logfile", "redis.log"}
	if s.opts.AOF {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Cluster {
		a = append(a, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	return append(a, s.opts.Args...)
}

func (s *Server) start() {
	s.t.Helper()
	if !s.tryStart() {
		log, _ := os.ReadFile(s.Dir + "/redis.log")
		s.t.Fatalf("redis-server on %s did not start: %s", s.Addr, log)
	}
}

// tryStart starts redis-server on s.Addr, three times if it does not
// answer, and reports whether it does.
func (s *Server) tryStart() bool {
	s.t.Helper()
	for try := 0; try < 3; try++ {
		cmd := exec.Command("redis-server", s.args()...)
		cmd.Dir = s.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("starting redis-server: %v", err)
		}
		s.cmd = cmd
		if s.waitReady(5 * time.Second) {
			return true
		}
		s.Stop()
		if log, _ := os.ReadFile(s.Dir + "/redis.log"); strings.Contains(string(log), "Address already in use") {
			return false // the same port again would fail the same way
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (s *Server) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if out, err := s.CLI("PING"); err == nil && strings.Contains(out, "PONG") {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// CLI runs redis-cli against the server and returns its output.
func (s *Server) CLI(args ...string) (string, error) {
	a := []string{"-h", "127.0.0.1", "-p", s.Port}
	if s.opts.Password != "" {
		a = append(a, "--no-auth-warning", "-a", s.opts.Password)
	}
	out, err := exec.Command("redis-cli", append(a, args...)...).CombinedOutput()
	return string(out), err
}

// MustCLI is CLI that fails the test on an error.
func (s *Server) MustCLI(args ...string) string {
	s.t.Helper()
	out, err := s.CLI(args...)
	if err != nil {
		s.t.Fatalf("redis-cli %v on %s: %v: %s", args, s.Addr, err, out)
	}
	return out
}

// Calls returns how many times the server ran cmd (lower case, e.g.
// "get", "evalsha") since start or ResetStats, from INFO commandstats.
func (s *Server) Calls(cmd string) int {
	s.t.Helper()
	out := s.MustCLI("INFO", "commandstats")
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		return n
	}
	return 0
}

// Commands returns how many commands of any kind the server ran since
// start or ResetStats, less the test's own (INFO, CONFIG RESETSTAT) and
// the PINGs of health probes.
func (s *Server) Commands() int {
	s.t.Helper()
	out := s.MustCLI("INFO", "commandstats")
	total := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" || name == "cmdstat_ping" ||
			strings.HasPrefix(name, "cmdstat_config") {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		total += n
	}
	return total
}

// ResetStats zeroes the command counts.
func (s *Server) ResetStats() { s.t.Helper(); s.MustCLI("CONFIG", "RESETSTAT") }

// Stop kills the process with SIGKILL: a crash, not a clean shutdown.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT)
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Freeze stops the process with SIGSTOP: connections are accepted by the
// kernel but never answered, like a hung or partitioned server. Stop
// resumes it before killing it.
func (s *Server) Freeze() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Thaw resumes a frozen process with its data intact.
func (s *Server) Thaw() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart kills the process and starts it again on the same port and
// directory: with AOF it reloads what it acknowledged, without it starts
// empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Running reports whether the process was started and not stopped.
func (s *Server) Running() bool { return s.cmd != nil }

// Cluster is a Redis Cluster of masters with one replica each.
type Cluster struct {
	Servers []*Server // masters first as created, then their replicas
	t       testing.TB
}

// StartCluster starts 2*masters servers and joins them with
// `redis-cli --cluster create --cluster-replicas 1`, then waits until
// every node reports the cluster ok.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	args := []string{"--cluster", "create"}
	for i := 0; i < 2*masters; i++ {
		s := Start(t, Options{Cluster: true})
		c.Servers = append(c.Servers, s)
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v: %s", err, out)
	}
	c.WaitOK(20 * time.Second)
	return c
}

// Addrs returns every server's address.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, s := range c.Servers {
		a = append(a, s.Addr)
	}
	return a
}

// WaitOK waits until every running node reports cluster_state:ok and
// agrees on the slots being covered.
func (c *Cluster) WaitOK(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, s := range c.Servers {
			if !s.Running() {
				continue
			}
			out, err := s.CLI("CLUSTER", "INFO")
			if err != nil || !strings.Contains(out, "cluster_state:ok") || !strings.Contains(out, "cluster_slots_ok:16384") {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not ok after %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitFailedOver waits until the other nodes have marked the killed
// server failed and the cluster is ok again: its replica serves its slots.
// (Right after a kill the cluster still reports ok, until the node
// timeout passes.)
func (c *Cluster) WaitFailedOver(dead *Server, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if c.markedFailed(dead) {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not marked failed after %v", dead, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.WaitOK(time.Until(deadline) + time.Second)
}

func (c *Cluster) markedFailed(dead *Server) bool {
	for _, s := range c.Servers {
		if !s.Running() || s == dead {
			continue
		}
		out, err := s.CLI("CLUSTER", "NODES")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || strings.SplitN(f[1], "@", 2)[0] != dead.Addr {
				continue
			}
			// "fail" (agreed), not only "fail?" (suspected), and no
			// longer serving slots: its replica was promoted.
			return strings.Contains(f[2], "fail") && !strings.Contains(f[2], "fail?") && len(f) <= 8
		}
	}
	return false
}

// Role returns "master" or "slave" as the server itself reports it.
func (s *Server) Role() string {
	s.t.Helper()
	out := s.MustCLI("ROLE")
	return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
}

// MasterOf returns the running master that serves key's slot.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		out, err := s.CLI("CLUSTER", "KEYSLOT", key)
		if err != nil {
			continue
		}
		slot := strings.TrimSpace(out)
		nodes := s.MustCLI("CLUSTER", "NODES")
		for _, line := range strings.Split(nodes, "\n") {
			f := strings.Fields(line)
			if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			addr := strings.SplitN(f[1], "@", 2)[0]
			for _, r := range f[8:] {
				lo, hi, _ := strings.Cut(r, "-")
				if hi == "" {
					hi = lo
				}
				l, _ := strconv.Atoi(lo)
				h, _ := strconv.Atoi(hi)
				k, _ := strconv.Atoi(slot)
				if l <= k && k <= h {
					for _, m := range c.Servers {
						if m.Addr == addr {
							return m
						}
					}
				}
			}
		}
		break
	}
	c.t.Fatalf("no master found for %q", key)
	return nil
}

// String names the server in messages.
func (s *Server) String() string { return fmt.Sprintf("redis %s", s.Addr) }
