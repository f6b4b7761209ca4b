package redis

import (
	"errors"
	"net"
	"strconv"
	"time"

	"sessionproxy/sessionstore"
)

// Settings are the session.redis section of the configuration file
// (CONTRACT section 11). Their defaults are DefaultSettings'.
type Settings struct {
	Addrs        []string      `yaml:"addrs"`         // one: a standalone server; several: Cluster seed nodes; none = not used
	Username     string        `yaml:"username"`      // ACL user (default none)
	Password     string        `yaml:"password"`      // (default none)
	KeyPrefix    string        `yaml:"key_prefix"`    // (default "sp:")
	Timeout      time.Duration `yaml:"timeout"`       // per command and dial (default 100ms)
	WaitReplicas int           `yaml:"wait_replicas"` // replicas that must acknowledge each write, WAIT (default 0)
	ClientCache  bool          `yaml:"client_cache"`  // server-assisted invalidation of the hot tier (default true)
}

var _ sessionstore.Settings = (*Settings)(nil)

func init() {
	sessionstore.RegisterKind(sessionstore.Kind{
		Name:     sessionstore.KindRedis,
		Key:      "addrs",
		Settings: func() sessionstore.Settings { return DefaultSettings() },
		Open: func(o sessionstore.Options) (sessionstore.Shared, error) {
			return New(o.Redis)
		},
	})
}

// DefaultSettings returns the settings of a session.redis section that
// sets nothing: the store's defaults, and client-side caching on.
func DefaultSettings() *Settings {
	return &Settings{
		KeyPrefix:   sessionstore.DefaultRedisKeyPrefix,
		Timeout:     sessionstore.DefaultRedisTimeout,
		ClientCache: true,
	}
}

// InUse reports whether the settings name addresses.
func (s *Settings) InUse() bool { return len(s.Addrs) > 0 }

// Check reports addresses that are not host:port or repeat, values out of
// range and, worded for the file, what o.Check says of Redis with write:
// async (the rule itself is the store's).
func (s *Settings) Check(o *sessionstore.Options) []sessionstore.Problem {
	var ps []sessionstore.Problem
	seen := map[string]bool{}
	for i, a := range s.Addrs {
		path := "session.redis.addrs[" + strconv.Itoa(i) + "]"
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			ps = append(ps, sessionstore.Problemf(path, "%s: %q is not host:port", path, a))
		} else if seen[a] {
			ps = append(ps, sessionstore.Problemf(path, "%s: %q is listed twice", path, a))
		}
		seen[a] = true
	}
	if !sessionstore.ValidKeyPrefix(s.KeyPrefix) {
		ps = append(ps, sessionstore.Problemf("session.redis.key_prefix", "session.redis.key_prefix %q: at most 64 printable characters without spaces", s.KeyPrefix))
	}
	if s.Timeout <= 0 {
		ps = append(ps, sessionstore.Problemf("session.redis.timeout", "session.redis.timeout must be above 0"))
	}
	if s.WaitReplicas < 0 || s.WaitReplicas > 16 {
		ps = append(ps, sessionstore.Problemf("session.redis.wait_replicas", "session.redis.wait_replicas must be between 0 and 16, got %d", s.WaitReplicas))
	}
	switch err := o.Check(); {
	case errors.Is(err, sessionstore.ErrAsyncClientCache):
		ps = append(ps, sessionstore.Problemf("session.write", "session.write: async needs the hot tier as the one authoritative copy, which session.redis.client_cache (several proxies writing) rules out: use sync, or client_cache: false"))
	case errors.Is(err, sessionstore.ErrAsyncWaitReplicas):
		ps = append(ps, sessionstore.Problemf("session.write", "session.write: async answers a write before it reaches redis, which session.redis.wait_replicas rules out: use sync, or wait_replicas: 0"))
	}
	return ps
}

// Apply sets o.Redis.
func (s *Settings) Apply(o *sessionstore.Options) error {
	o.Redis = sessionstore.RedisOptions{
		Addrs:        s.Addrs,
		Username:     s.Username,
		Password:     s.Password,
		KeyPrefix:    s.KeyPrefix,
		Timeout:      s.Timeout,
		WaitReplicas: s.WaitReplicas,
		ClientCache:  s.ClientCache,
	}
	return nil
}
