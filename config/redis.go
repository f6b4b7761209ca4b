package config

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Redis configures Redis, or a Redis Cluster, as the shared session store
// instead of memcached (docs/stores.md).
type Redis struct {
	Addrs        []string `yaml:"addrs"`         // one: a standalone server; several: Cluster seed nodes; none = not used
	Username     string   `yaml:"username"`      // ACL user (default none)
	Password     string   `yaml:"password"`      // (default none)
	KeyPrefix    string   `yaml:"key_prefix"`    // (default "sp:")
	Timeout      Duration `yaml:"timeout"`       // per command and dial (default 100ms)
	WaitReplicas int      `yaml:"wait_replicas"` // replicas that must acknowledge each write, WAIT (default 0)
	ClientCache  bool     `yaml:"client_cache"`  // server-assisted invalidation of the hot tier (default true)
}

// DefaultRedis holds the defaults of session.redis.
var DefaultRedis = Redis{
	KeyPrefix:   "sp:",
	Timeout:     Duration(100 * time.Millisecond),
	ClientCache: true,
}

// redis checks session.redis, and that it and session.memcached.nodes are
// not both set.
func (v *validator) redis() {
	s := v.c.Session
	r := s.Redis
	if len(r.Addrs) > 0 && len(s.Memcached.Nodes) > 0 {
		v.errf("session.redis.addrs", "session.redis.addrs and session.memcached.nodes exclude each other: choose one shared store")
	}
	seen := map[string]bool{}
	for i, a := range r.Addrs {
		path := "session.redis.addrs[" + strconv.Itoa(i) + "]"
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			v.errf(path, "%s: %q is not host:port", path, a)
		} else if seen[a] {
			v.errf(path, "%s: %q is listed twice", path, a)
		}
		seen[a] = true
	}
	if len(r.KeyPrefix) > 64 || strings.IndexFunc(r.KeyPrefix, badKeyRune) >= 0 {
		v.errf("session.redis.key_prefix", "session.redis.key_prefix %q: at most 64 printable characters without spaces", r.KeyPrefix)
	}
	v.positive("session.redis.timeout", r.Timeout)
	if r.WaitReplicas < 0 || r.WaitReplicas > 16 {
		v.errf("session.redis.wait_replicas", "session.redis.wait_replicas must be between 0 and 16, got %d", r.WaitReplicas)
	}
	// Which write modes go with client_cache and wait_replicas is the
	// store's to say (sessionstore.Options.Check, run by session()).
}
