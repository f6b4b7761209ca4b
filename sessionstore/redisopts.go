package sessionstore

import (
	"log/slog"
	"time"
)

// RedisOptions are here, not in sessionstore/redis, so that what the Redis
// store accepts (Options.Check) is known without linking its client in:
// config asks Check, and the redis package builds the store
// (sessionstore/redis registers itself, see Register).

// RedisOptions configure a Redis store. A zero field means the default in
// its comment.
type RedisOptions struct {
	// Addrs is one standalone server, or seed nodes of a Redis Cluster
	// (the client asks them for the slot map and finds the rest).
	Addrs     []string
	Username  string        // ACL user (default none: the "default" user)
	Password  string        // AUTH password (default none)
	KeyPrefix string        // key prefix (default DefaultRedisKeyPrefix)
	Timeout   time.Duration // per command and dial (default DefaultRedisTimeout)
	// WaitReplicas is how many replicas must acknowledge each write
	// (WAIT) before it counts; a write fewer replicas took within Timeout
	// is reported as ErrUnavailable. 0 (the default) waits for none.
	WaitReplicas int
	// ClientCache turns on server-assisted client-side caching: the
	// servers tell this process about every change of a session key, and
	// the Store evicts it from its hot tier (see Invalidator).
	ClientCache bool
	// ProbeInterval paces the PINGs behind Status and the refresh of the
	// presence mark (default DefaultRedisProbeInterval).
	ProbeInterval time.Duration
	// InstanceID names this process in its presence mark (default random;
	// peers.go). Marks are kept without ClientCache only: with it, the
	// servers' invalidations keep every hot tier coherent.
	InstanceID string
	Logger     *slog.Logger // server state changes (default slog.Default())
}

// Defaults of RedisOptions: Redis's own, even where they equal
// memcached's.
const (
	DefaultRedisKeyPrefix     = "sp:"
	DefaultRedisTimeout       = 100 * time.Millisecond
	DefaultRedisProbeInterval = time.Second
)
