package sessionstore

import "sync/atomic"

// Invalidator is implemented by a Shared store whose servers report
// changes (Redis with server-assisted client-side caching). The Store then
// evicts a session from its hot tier as soon as any writer changes it, so
// the hot tier of every process sharing the store stays coherent without a
// time bound; it is no longer the one authoritative copy, so writes always
// merge on the shared store's newest copy.
type Invalidator interface {
	// Watch has fn called with the ID of each session changed on the
	// store, and with nil when changes may have gone unreported (a lost
	// connection): then every cached session is suspect. fn must be fast
	// and safe for concurrent use. Watch reports whether reports will
	// come; false leaves the hot tier to local_cache.ttl.
	Watch(fn func(id []byte)) bool
}

// coherence counts the invalidations the hot tier received, so that a
// value read from the shared store before an invalidation is not cached
// after it: the reply and the invalidation of a later write arrive on
// different goroutines, and caching the reply last would pin a stale copy
// that nothing evicts again. Counters are striped by ID; all counts
// invalidations of everything.
type coherence struct {
	all   atomic.Uint64
	slots [1024]atomic.Uint64
}

// gen is the invalidation count that covers id; a hot-tier fill is done
// only if it is unchanged since before the read or write that produced
// the value.
func (c *coherence) gen(id []byte) uint64 {
	if c == nil {
		return 0
	}
	return c.all.Load() + c.slots[hashID(id)%uint64(len(c.slots))].Load()
}

// watch subscribes the Store to its shared store's invalidations, when it
// reports them.
func (s *Store) watch() bool {
	inv, ok := s.shared.(Invalidator)
	if !ok || s.local == nil {
		return false
	}
	s.coherent = new(coherence)
	if !inv.Watch(s.invalidate) {
		s.coherent = nil
		return false
	}
	return true
}

// invalidate evicts id (every session when nil) from the hot tier.
func (s *Store) invalidate(id []byte) {
	c := s.coherent
	if id == nil {
		c.all.Add(1)
		s.local.Clear()
		return
	}
	c.slots[hashID(id)%uint64(len(c.slots))].Add(1)
	s.local.Del(id)
}

// Coherent reports whether the hot tier is kept coherent by the shared
// store's invalidations.
func (s *Store) Coherent() bool { return s.coherent != nil }

// fillLocal is setLocal for a value produced when the invalidation count
// of id was gen: it is skipped if an invalidation came in between.
func (s *Store) fillLocal(id, enc []byte, sess *Session, gen uint64) {
	if s.coherent != nil && s.coherent.gen(id) != gen {
		s.local.Del(id)
		return
	}
	s.setLocal(id, enc, sess)
}
