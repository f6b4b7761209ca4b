package sessionstore

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Presence marks: every process keeps a short-lived mark of its own on the
// shared store, so that a process can tell whether it is the only one
// using it. With LocalTTL AutoTTL, the hot tier is trusted as with 0 (this
// process is the one writer of its sessions) while no other process's mark
// is there, and bounded to AutoCrowdedTTL once one is: two proxies over the
// same nodes with the defaults serve a logout through the other within
// about a second, instead of for as long as a hot tier keeps the session
// (issue 22).
//
// A process that finds others when it starts waits, before it serves, for
// as long as they take to see it (their refresh interval, from their
// marks): until then they trust their hot tiers and write sessions over
// whatever is held, which would undo a change (a logout) made through the
// new process.
//
// How a store keeps its marks is its own (sessionstore/memcached's
// presence.go, sessionstore/redis); this is what they share.

// A PeerWatcher is a Shared store that keeps this process's presence mark
// on its servers and reports the other processes' marks.
type PeerWatcher interface {
	// WatchPeers has fn called with the number of other processes whose
	// marks are on the store (PeersUnknown while no server has answered
	// since the start), whenever it changes from what fn was last told (at
	// once if it is not 0). fn is called from one goroutine at a time.
	WatchPeers(fn func(others int))
}

// MarkTTL is how long a presence mark outlives its last refresh: a few
// refreshes, so that one slow round does not make the process look gone,
// and longer than AutoCrowdedTTL plus a refresh, so that when a process
// is seen to have gone, every hot-tier copy read while it was there has
// expired (a process going back to trusting its copies must not trust one
// older than the other's last write).
func MarkTTL(interval time.Duration) time.Duration {
	return max(3*time.Second, 3*interval)
}

// NewInstanceID returns a random instance ID (16 hex digits), for
// Options.InstanceID.
func NewInstanceID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MaxInstanceID is the longest instance ID: an ID is 1 to MaxInstanceID
// bytes of [0-9A-Za-z_-].
const MaxInstanceID = 64

// ValidInstanceID reports whether id may name a process in a roster.
func ValidInstanceID(id string) bool {
	if len(id) == 0 || len(id) > MaxInstanceID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// PeersUnknown is the count of other processes a PeerCount holds while
// no presence round has answered: others are assumed, as if seen.
const PeersUnknown = -1

// SeenBy is how long a store waits, at start, until the processes that
// were there before this one have had a presence round since its mark
// went up: the longest of their intervals, and a margin for the round
// itself.
func SeenBy(longest time.Duration) time.Duration {
	if longest <= 0 {
		return 0
	}
	return longest + max(longest/4, 100*time.Millisecond)
}

// PeerCount is the count of other processes last seen, and who is told of
// its changes: what a shared store that keeps presence marks reports
// through PeerWatcher. The zero value counts none and tells no one.
type PeerCount struct {
	mu sync.Mutex // protects the fields below, and orders calls of fn
	n  int
	fn func(others int)
}

// Set records n and tells the watcher if it changed.
func (p *PeerCount) Set(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n == p.n {
		return
	}
	p.n = n
	if p.fn != nil {
		p.fn(n)
	}
}

// Others returns the count last set: 0 while this process is alone on the
// store, PeersUnknown while that is not known.
func (p *PeerCount) Others() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Watch makes fn the watcher and tells it the count unless it is 0.
func (p *PeerCount) Watch(fn func(others int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn = fn
	if p.n != 0 {
		fn(p.n)
	}
}

// watchPeers subscribes the Store to the other processes' presence marks
// when its shared store keeps them.
func (s *Store) watchPeers() {
	if pw, ok := s.shared.(PeerWatcher); ok {
		pw.WatchPeers(s.peersChanged)
	}
}

// peersChanged is told how many other processes keep presence marks on
// the shared store. Under AutoTTL it bounds the hot tier while there are
// any; with async writes, which need one proxy per set of sessions, any
// is an error to log. Each change between none and some is logged once.
func (s *Store) peersChanged(others int) {
	crowded := others != 0 // PeersUnknown too
	s.others.Store(crowded)
	if crowded == s.crowdedSeen {
		return
	}
	s.crowdedSeen = crowded
	where := "on the " + s.shared.Kind() + " nodes"
	switch {
	case others == PeersUnknown && s.auto:
		s.crowded.Store(true)
		s.boundLocal()
		s.logger().Warn("no " + s.shared.Kind() + " node answered yet: other proxies are assumed until one does; local cache ttl " + AutoCrowdedTTL.String())
	case others == PeersUnknown:
		// Not auto: the ttl is as set, and s.others keeps changes from
		// being kept (keeps); nothing to log until a node answers.
	case s.opts.Async && crowded:
		s.logger().Error("another proxy seen "+where+": write: async needs one proxy per set of sessions, or changes made through the others are lost",
			"others", others)
	case s.opts.Async:
		s.logger().Info("no other proxy " + where + " any more")
	case s.auto && crowded:
		s.crowded.Store(true)
		s.boundLocal()
		s.logger().Warn("another proxy seen "+where+"; local cache ttl "+AutoCrowdedTTL.String(), "others", others)
	case s.auto:
		s.crowded.Store(false)
		s.logger().Info("no other proxy " + where + " any more; local cache trusted again")
	case crowded && s.mode == trustedMode{}:
		// A ttl of 0 that was set is kept as set, but it is worth a word.
		s.logger().Warn("another proxy seen "+where+"; local_cache.ttl: 0 is kept as set, so this proxy serves sessions from its hot tier whatever the others change (ttl: auto bounds it)",
			"others", others)
	}
}

// boundLocal shortens the hot tier's copies to AutoCrowdedTTL, so that
// those cached while this process was alone are re-read as soon as those
// cached from now on. A change kept only here while the shared store was
// down keeps its copy until it is written back.
func (s *Store) boundLocal() {
	secs := int((AutoCrowdedTTL + time.Second - 1) / time.Second)
	it := s.local.NewIterator()
	for e := it.Next(); e != nil; e = it.Next() {
		s.mu.Lock()
		_, dirty := s.dirty[string(e.Key)]
		s.mu.Unlock()
		if !dirty {
			s.local.Touch(e.Key, secs)
		}
	}
}

// Crowded reports whether the hot tier is bounded to AutoCrowdedTTL
// because another process uses the shared store (LocalTTL AutoTTL).
func (s *Store) Crowded() bool { return s.crowded.Load() }
