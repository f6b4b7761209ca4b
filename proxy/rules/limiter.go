package rules

import (
	"hash/maphash"
	"sync"
	"time"
)

// Limiter is a leaky bucket per key, as nginx's limit_req with burst and
// nodelay: a key may send burst+1 requests at once and then one per
// Rate.Interval; a request beyond that is refused (never delayed), and a
// refused request does not fill the bucket. Safe for concurrent use by
// multiple goroutines.
//
// Memory is bounded: the buckets live in a fixed table of slots,
// set-associative by a seeded hash of the key (a full 64-bit hash is
// the key's identity). A key that finds its set full takes the slot of
// the bucket closest to empty, so what is forgotten first is what would
// have let a request through anyway.
type Limiter struct {
	interval int64 // ns
	slack    int64 // ns: burst * interval
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

const (
	limiterShards = 64
	limiterWays   = 8
)

type limiterShard struct {
	mu    sync.Mutex
	slots []slot
	_     [40]byte // keep shards on separate cache lines
}

type slot struct {
	key uint64 // 0: free
	tat int64  // the theoretical arrival time (GCRA): when the bucket is empty, in ns
}

// DefaultLimiterSlots is how many keys a Limiter remembers at most: 1 MiB
// of buckets.
const DefaultLimiterSlots = 1 << 16

// NewLimiter returns a Limiter of rate and burst that remembers up to
// slots keys (DefaultLimiterSlots if slots <= 0).
func NewLimiter(rate Rate, burst, slots int) *Limiter {
	if slots <= 0 {
		slots = DefaultLimiterSlots
	}
	perShard := max(limiterWays, (slots/limiterShards+limiterWays-1)/limiterWays*limiterWays)
	l := &Limiter{interval: int64(rate.Interval), slack: int64(burst) * int64(rate.Interval), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].slots = make([]slot, perShard)
	}
	return l
}

// Allow takes one request of key at now. When the request is refused it
// returns how long until one would be let through.
func (l *Limiter) Allow(key []byte, now time.Time) (ok bool, wait time.Duration) {
	h := maphash.Bytes(l.seed, key)
	if h == 0 {
		h = 1
	}
	t := now.UnixNano()
	sh := &l.shards[h%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sets := uint64(len(sh.slots) / limiterWays)
	set := sh.slots[(h/limiterShards)%sets*limiterWays:][:limiterWays]
	s := &set[0]
	for i := range set {
		if set[i].key == h {
			s = &set[i]
			break
		}
		if set[i].tat < s.tat {
			s = &set[i]
		}
	}
	if s.key != h {
		*s = slot{key: h, tat: t}
	}
	tat := max(s.tat, t)
	if over := tat - t - l.slack; over > 0 {
		return false, time.Duration(over)
	}
	s.tat = tat + l.interval
	return true, 0
}
