package sessionstore

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Node names one memcached server.
type Node struct {
	ID       string // name used in logs, /status and metrics
	Addr     string // host:port
	Failover bool   // holds sessions only while regular nodes are missing
}

// node is a memcached server and its health. gomemcache has no notion of
// a dead server, so each node has its own client and the store skips nodes
// marked down until a background probe finds them answering again.
type node struct {
	Node
	client *memcache.Client
	seed   uint64 // rendezvous hash of the node ID

	up      atomic.Bool
	probing atomic.Bool
}

func newNode(n Node, timeout time.Duration, maxIdle int) *node {
	c := memcache.New(n.Addr)
	c.Timeout = timeout
	c.MaxIdleConns = maxIdle
	nd := &node{Node: n, client: c, seed: hashString(fnvOffset, n.ID)}
	nd.up.Store(true)
	return nd
}

// nodeFailed reports whether err says the node itself is unusable, as
// opposed to an answer about the key (gomemcache's resumableError).
func nodeFailed(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, memcache.ErrCacheMiss),
		errors.Is(err, memcache.ErrCASConflict),
		errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrMalformedKey):
		return false
	}
	// The node answered, but refused this item (e.g. over its -I limit).
	return !strings.Contains(err.Error(), "SERVER_ERROR")
}

// check marks the node down if err says it failed, and reports whether it
// did.
func (s *Store) check(n *node, err error) bool {
	if !nodeFailed(err) {
		return false
	}
	if n.up.CompareAndSwap(true, false) {
		s.logger().Warn("memcached node down", "node", n.ID, "addr", n.Addr, "error", err)
		s.startProbe(n)
	}
	return true
}

// startProbe pings a down node until it answers, then brings it back and
// writes back what was kept locally while no node could take it.
func (s *Store) startProbe(n *node) {
	if !n.probing.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer n.probing.Store(false)
		t := time.NewTicker(s.probeInterval())
		defer t.Stop()
		for {
			select {
			case <-s.closed:
				return
			case <-t.C:
			}
			if err := n.client.Ping(); err != nil {
				continue
			}
			n.up.Store(true)
			s.logger().Info("memcached node up", "node", n.ID, "addr", n.Addr)
			s.writeBackDirty()
			return
		}
	}()
}

func (s *Store) logger() *slog.Logger {
	if s.opts.Logger == nil {
		return slog.Default()
	}
	return s.opts.Logger
}

// Rendezvous (highest random weight) hashing: each node scores each key and
// a key's nodes are the highest scores. Adding a node moves only the keys
// it now wins, about 1/N of them. The hash is FNV-1a with a murmur3
// finalizer, fixed so that every proxy instance agrees on placement.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

func hashBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// maxNodes bounds the per-call placement arrays kept on the stack.
const maxNodes = 32

// placement is the nodes of one key in preference order: regular nodes by
// score, then failover nodes by score.
type placement struct {
	nodes [maxNodes]*node
	n     int
}

func (s *Store) place(id []byte, p *placement) {
	var scores [maxNodes]uint64
	p.n = 0
	for _, nd := range s.nodes {
		score := fmix64(hashBytes(nd.seed, id))
		// Insertion sort: regular before failover, then by score.
		i := p.n
		for i > 0 && less(nd, score, p.nodes[i-1], scores[i-1]) {
			p.nodes[i], scores[i] = p.nodes[i-1], scores[i-1]
			i--
		}
		p.nodes[i], scores[i] = nd, score
		p.n++
	}
}

func less(a *node, as uint64, b *node, bs uint64) bool {
	if a.Failover != b.Failover {
		return !a.Failover
	}
	return as > bs
}

// replicas returns the first Replicas nodes of the placement that are up:
// the nodes a key is written to and read from. Failover nodes come in only
// when fewer regular nodes than that are up.
func (s *Store) replicas(id []byte, p *placement) []*node {
	s.place(id, p)
	up := 0
	for i := 0; i < p.n && up < s.opts.Replicas; i++ {
		if p.nodes[i].up.Load() {
			p.nodes[up] = p.nodes[i]
			up++
		}
	}
	return p.nodes[:up]
}
