package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// classicTarget is "the classic stack" under the fault scenario: nginx
// (the wrk comparison's configuration) in front of two bench/backend
// -classic processes, which keep their sessions in memcached themselves as
// memcached-session-manager does in non-sticky mode (bench/backend's
// classic.go): read the primary named in the session id, fall back to the
// backup copy on the other node, write both after a change.
type classicTarget struct {
	beCmds []*exec.Cmd
	addr   string
	nodes  []*mcNode
}

func (c *classicTarget) Name() string       { return "classic" }
func (c *classicTarget) CookieName() string { return "JSESSIONID" }
func (c *classicTarget) Backend() *exec.Cmd { return c.beCmds[0] }

func (c *classicTarget) Start(f *faultEnv) (string, error) {
	c.nodes = f.nodes
	var mc, backends []string
	for _, n := range f.nodes {
		mc = append(mc, n.Addr)
	}
	for i := 1; i <= 2; i++ {
		addr := freeAddr()
		cmd, err := f.spawnLog(fmt.Sprintf("classic-backend%d", i), f.backendBin,
			"-listen", addr, "-classic", "-memcached", strings.Join(mc, ","))
		if err != nil {
			return "", err
		}
		c.beCmds, backends = append(c.beCmds, cmd), append(backends, addr)
	}
	c.addr = freeAddr()
	dir := filepath.Join(f.dir, "classic-nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig(dir, c.addr, backends)), 0o600); err != nil {
		return "", err
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	if _, err := f.spawnLog("nginx-classic", bin, "-c", conf, "-p", dir, "-g", "daemon off;"); err != nil {
		return "", err
	}
	for _, a := range append(backends, c.addr) {
		if err := listening(a, 15*time.Second); err != nil {
			return "", err
		}
	}
	return c.addr, nil
}

// StartFresh returns the same nginx: the classic stack caches nothing
// between requests, so every read already comes from memcached.
func (c *classicTarget) StartFresh(*faultEnv) (string, error) { return c.addr, nil }

// Status has no source in the classic stack (its backends keep no node
// state), so it reports whether each node answers memcached's version
// command, probed by the runner itself, and no backends.
func (c *classicTarget) Status() (*targetStatus, error) {
	st := &targetStatus{}
	for _, n := range c.nodes {
		state := "down"
		if answers(n.Addr) {
			state = "up"
		}
		st.Memcached = append(st.Memcached, nodeStatus{ID: n.ID, State: state})
	}
	return st, nil
}

func answers(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "VERSION")
}
