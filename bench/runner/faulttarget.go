package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// faultTarget is a system under the fault scenario: a proxy in front of
// two backends that keeps its sessions on the memcached nodes n1 and n2.
// Its backends answer GET /write?v=X by storing X in the session attribute
// "last" and returning the value it held before, and GET /peek by
// returning it (bench/backend does this for sessionproxy).
//
// The targets are sessionproxy and the classic stack (faultclassic.go:
// nginx in front of backends that keep their sessions in memcached
// themselves, as memcached-session-manager does); every run is drawn on
// the same panels.
type faultTarget interface {
	// Name labels the target's run in the results.
	Name() string
	// Start starts the target's backends and proxy against f's nodes,
	// through f.spawnLog so that they are cleaned up with f, and returns
	// the address its clients use.
	Start(f *faultEnv) (addr string, err error)
	// CookieName is the session cookie the clients keep.
	CookieName() string
	// Backend is the backend process the timeline kills.
	Backend() *exec.Cmd
	// Status reports the nodes (and backends) as the target sees them;
	// nil and no error if the target cannot tell.
	Status() (*targetStatus, error)
	// StartFresh starts another instance of the proxy with nothing cached,
	// for the final check to read sessions from memcached, and returns its
	// address.
	StartFresh(f *faultEnv) (addr string, err error)
}

// targetStatus is the part of a target's status the scenario follows;
// the field names are sessionproxy's GET /status.
type targetStatus struct {
	Backends []struct {
		URL string `json:"url"`
		Up  bool   `json:"up"`
	} `json:"backends"`
	Memcached []nodeStatus `json:"memcached"`
}

type nodeStatus struct {
	ID              string `json:"id"`
	State           string `json:"state"` // "down", "catching_up" or "up"
	HandoffPending  int    `json:"handoff_pending"`
	HandoffReplayed int64  `json:"handoff_replayed"`
	Copied          int64  `json:"copied"`
	Catchups        int64  `json:"catchups"`
	LastCatchupMs   int64  `json:"last_catchup_ms"`
}

var faultTargetsByName = map[string]func() faultTarget{
	"sessionproxy": func() faultTarget { return &sessionproxyTarget{} },
	"classic":      func() faultTarget { return &classicTarget{} },
}

// sessionproxyTarget is sessionproxy as the failover scenario runs
// it: one instance, write: sync, replicas 2, the hot tier on and
// authoritative (local_cache.ttl 0, as the wrk runner's "hot" instance),
// probe_interval 1s, the admin listener on loopback for /status.
type sessionproxyTarget struct {
	backends []string // host:port
	beCmds   []*exec.Cmd
	addr     string
	admin    string
	client   http.Client
}

func (s *sessionproxyTarget) Name() string       { return "sessionproxy" }
func (s *sessionproxyTarget) CookieName() string { return "SPSESSIONID" }
func (s *sessionproxyTarget) Backend() *exec.Cmd { return s.beCmds[0] }

func (s *sessionproxyTarget) Start(f *faultEnv) (string, error) {
	for i := 1; i <= 2; i++ {
		addr := freeAddr()
		cmd, err := f.spawnLog(fmt.Sprintf("backend%d", i), f.backendBin, "-listen", addr)
		if err != nil {
			return "", err
		}
		s.backends, s.beCmds = append(s.backends, addr), append(s.beCmds, cmd)
	}
	s.addr, s.admin = freeAddr(), freeAddr()
	s.client.Timeout = time.Second
	if err := s.spawn(f, "sessionproxy", s.addr, s.admin); err != nil {
		return "", err
	}
	for _, a := range append([]string{s.addr, s.admin}, s.backends...) {
		if err := listening(a, 15*time.Second); err != nil {
			return "", err
		}
	}
	return s.addr, nil
}

// StartFresh starts a second sessionproxy on the same nodes and backends:
// its hot tier is empty, so every session it serves comes from memcached.
func (s *sessionproxyTarget) StartFresh(f *faultEnv) (string, error) {
	addr := freeAddr()
	if err := s.spawn(f, "sessionproxy-fresh", addr, ""); err != nil {
		return "", err
	}
	return addr, listening(addr, 15*time.Second)
}

func (s *sessionproxyTarget) spawn(f *faultEnv, name, addr, admin string) error {
	var nodes string
	for i, n := range f.nodes {
		if i > 0 {
			nodes += ", "
		}
		nodes += fmt.Sprintf("%q", n.ID+":"+n.Addr)
	}
	conf := filepath.Join(f.dir, name+".yaml")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`listen: %q
admin: %q
access_log: off  # as the classic stack's nginx: the same work on both sides
backends:
  - url: "http://%s"
  - url: "http://%s"
session:
  write: sync
  local_cache:
    size: 64MiB
    ttl: 0s
  memcached:
    nodes: [%s]
    replicas: 2
    probe_interval: 1s
`, addr, admin, s.backends[0], s.backends[1], nodes)), 0o600)
	if err != nil {
		return err
	}
	_, err = f.spawnLog(name, f.proxyBin, "run", "-config", conf)
	return err
}

func (s *sessionproxyTarget) Status() (*targetStatus, error) {
	resp, err := s.client.Get("http://" + s.admin + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/status: %s", resp.Status)
	}
	var st targetStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}
