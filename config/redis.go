package config

import (
	"net"
	"strconv"
	"strings"

	"sessionproxy/sessionstore"
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

// DefaultRedis holds the defaults of session.redis: the store's, and
// client-side caching on.
var DefaultRedis = Redis{
	KeyPrefix:   sessionstore.DefaultRedisKeyPrefix,
	Timeout:     Duration(sessionstore.DefaultRedisTimeout),
	ClientCache: true,
}

// redis checks the values of session.redis. Whether it goes with the
// rest (memcached nodes, write modes) is the store's to say
// (sessionstore.Options.Check, asked by session()).
func (v *validator) redis() {
	r := v.c.Session.Redis
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
}
