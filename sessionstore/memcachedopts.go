package sessionstore

import (
	"log/slog"
	"time"
)

// MemcachedOptions are here, not in sessionstore/memcached, so that what
// the memcached store accepts (Options.Check) and its defaults are known
// without linking it in, as RedisOptions are: config asks Check, and the
// memcached package builds the store (sessionstore/memcached registers
// itself, see Register).

// MemcachedOptions configure a Memcached store. A zero field means the
// default in its comment.
type MemcachedOptions struct {
	Nodes         []Node        // the memcached servers
	Replicas      int           // copies of each session on distinct nodes (default 2)
	KeyPrefix     string        // key prefix (default "sp:")
	Timeout       time.Duration // per operation and dial (default 100ms)
	MaxIdleConns  int           // connections kept open to each node, shared pipelined by every get and write (default 1)
	ProbeInterval time.Duration // how often each node is probed, and presence marks refreshed (default 1s)
	InstanceID    string        // this process in presence marks (default random; peers.go)
	Logger        *slog.Logger  // node state changes (default slog.Default())

	// StateDir, when set, keeps the nodes' hints (the writes each missed
	// while down) in files below it, so that they survive a restart of
	// the process (sessionstore/memcached's hintdir.go). Several
	// processes may share it. Empty: hints are kept in memory only.
	StateDir string
	// HintFileMax bounds each hint file, in bytes (default
	// DefaultHintFileMax); past it the node is marked for a full copy.
	HintFileMax int64
}

// Defaults of MemcachedOptions.
const (
	DefaultReplicas      = 2
	DefaultKeyPrefix     = "sp:"
	DefaultTimeout       = 100 * time.Millisecond
	DefaultMaxIdleConns  = 1 // one makes the largest batches (bench/README.md); memcache.DefaultConns, pinned by a test, so config links no memcached client
	DefaultProbeInterval = time.Second
)

// DefaultHintFileMax is the size a node's hint file may reach (64 MiB:
// about 64,000 missed writes of 1 KiB sessions) before the node is marked
// for a full copy instead.
const DefaultHintFileMax = 64 << 20
