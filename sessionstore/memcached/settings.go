// The memcached store's part of sessionproxy's configuration: the
// session.memcached section, its defaults and rules, registered with
// sessionstore (RegisterKind) on import. (Not the package comment: that is
// the store's, beside it.)

package memcached

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"sessionproxy/sessionstore"
)

// Settings are the session.memcached section of the configuration file
// (CONTRACT section 2). Their defaults are DefaultSettings'.
type Settings struct {
	Nodes         []string      `yaml:"nodes"`          // "id:host:port" or "host:port"; none = local tier only
	FailoverNodes []string      `yaml:"failover_nodes"` // node IDs used only while regular nodes are missing
	Replicas      int           `yaml:"replicas"`       // copies of each session, primary included (default 2)
	KeyPrefix     string        `yaml:"key_prefix"`     // (default "sp:")
	Timeout       time.Duration `yaml:"timeout"`        // per operation and dial (default 100ms)
	MaxIdleConns  int           `yaml:"max_idle_conns"` // connections kept open per node, shared pipelined (default 1)
	ProbeInterval time.Duration `yaml:"probe_interval"` // how often a down node is probed (default 1s)
}

var _ sessionstore.Settings = (*Settings)(nil)

func init() {
	sessionstore.RegisterKind(sessionstore.Kind{
		Name:     sessionstore.KindMemcached,
		Key:      "nodes",
		Default:  true, // the store of CONTRACT section 2; a file that names none lacks its nodes
		Settings: func() sessionstore.Settings { return DefaultSettings() },
		Open: func(o sessionstore.Options) (sessionstore.Shared, error) {
			return NewMemcached(o.Memcached)
		},
	})
}

// DefaultSettings returns the settings of a session.memcached section that
// sets nothing: the store's defaults.
func DefaultSettings() *Settings {
	return &Settings{
		Replicas:      sessionstore.DefaultReplicas,
		KeyPrefix:     sessionstore.DefaultKeyPrefix,
		Timeout:       sessionstore.DefaultTimeout,
		MaxIdleConns:  sessionstore.DefaultMaxIdleConns,
		ProbeInterval: sessionstore.DefaultProbeInterval,
	}
}

// InUse reports whether the settings name nodes.
func (s *Settings) InUse() bool { return len(s.Nodes) > 0 }

// Check reports nodes that do not parse or repeat, failover IDs that name
// no node, and values out of range. The memcached store's rules of which
// settings go together are all in sessionstore.Options.Check.
func (s *Settings) Check(*sessionstore.Options) []sessionstore.Problem {
	nodes, ps := s.nodeList()
	regular := 0
	for _, n := range nodes {
		if !n.Failover {
			regular++
		}
	}
	if len(nodes) > 0 && regular == 0 {
		ps = append(ps, sessionstore.Problemf("session.memcached.failover_nodes", "session.memcached: every node is a failover node; at least one must be regular"))
	}
	if s.Replicas < 1 {
		ps = append(ps, sessionstore.Problemf("session.memcached.replicas", "session.memcached.replicas must be 1 or more, got %d", s.Replicas))
	}
	if !sessionstore.ValidKeyPrefix(s.KeyPrefix) {
		ps = append(ps, sessionstore.Problemf("session.memcached.key_prefix", "session.memcached.key_prefix %q: at most 64 printable characters without spaces", s.KeyPrefix))
	}
	if s.Timeout <= 0 {
		ps = append(ps, sessionstore.Problemf("session.memcached.timeout", "session.memcached.timeout must be above 0"))
	}
	if s.MaxIdleConns < 1 {
		ps = append(ps, sessionstore.Problemf("session.memcached.max_idle_conns", "session.memcached.max_idle_conns must be 1 or more"))
	}
	if s.ProbeInterval <= 0 {
		ps = append(ps, sessionstore.Problemf("session.memcached.probe_interval", "session.memcached.probe_interval must be above 0"))
	}
	return ps
}

// Apply sets o.Memcached. On a node that does not parse it fails, and o
// still names as many nodes as the section does, so that Options.Check
// sees the store in use as the file does.
func (s *Settings) Apply(o *sessionstore.Options) error {
	nodes, err := s.NodeList()
	if err != nil {
		nodes = make([]sessionstore.Node, len(s.Nodes))
	}
	o.Memcached = sessionstore.MemcachedOptions{
		Nodes:         nodes,
		Replicas:      s.Replicas,
		KeyPrefix:     s.KeyPrefix,
		Timeout:       s.Timeout,
		MaxIdleConns:  s.MaxIdleConns,
		ProbeInterval: s.ProbeInterval,
	}
	return err
}

// NodeList parses Nodes and marks the failover ones. Its error lists every
// entry that is wrong, one a line.
func (s *Settings) NodeList() ([]sessionstore.Node, error) {
	nodes, ps := s.nodeList()
	if len(ps) == 0 {
		return nodes, nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = errors.New(p.Msg)
	}
	return nodes, errors.Join(errs...)
}

func (s *Settings) nodeList() ([]sessionstore.Node, []sessionstore.Problem) {
	var ps []sessionstore.Problem
	var nodes []sessionstore.Node
	ids := map[string]int{}
	for i, str := range s.Nodes {
		path := fmt.Sprintf("session.memcached.nodes[%d]", i)
		n, err := ParseNode(str)
		if err != nil {
			ps = append(ps, sessionstore.Problemf(path, "%s: %v", path, err))
			continue
		}
		if _, dup := ids[n.ID]; dup {
			ps = append(ps, sessionstore.Problemf(path, "%s: node %q is listed twice", path, n.ID))
			continue
		}
		ids[n.ID] = len(nodes)
		nodes = append(nodes, n)
	}
	for i, id := range s.FailoverNodes {
		j, ok := ids[id]
		if !ok {
			path := fmt.Sprintf("session.memcached.failover_nodes[%d]", i)
			ps = append(ps, sessionstore.Problemf(path, "%s: %q is not the id of a node in session.memcached.nodes", path, id))
			continue
		}
		nodes[j].Failover = true
	}
	return nodes, ps
}

// ParseNode parses "id:host:port" or "host:port" (the ID is then the
// address). IPv6 hosts go in brackets: "n1:[::1]:11211".
func ParseNode(s string) (sessionstore.Node, error) {
	id, addr := "", s
	if !strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 2 || (i >= 0 && strings.Contains(s[i+1:], "[")) {
			id, addr = s[:i], s[i+1:]
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return sessionstore.Node{}, fmt.Errorf("%q is not host:port or id:host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return sessionstore.Node{}, fmt.Errorf("%q has an invalid port", s)
	}
	if id == "" {
		id = addr
	}
	return sessionstore.Node{ID: id, Addr: addr}, nil
}
