package balancer

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Balancer chooses a backend for a request. Pick skips backends that are not
// Available, those that are Full, and those in tried (the backends a retried request already
// failed on), and returns nil when none is left. Unlike groupcache's
// PeerPicker it takes no key: no policy here hashes requests (nginx's ip_hash
// would defeat the point of shared sessions). Implementations are safe for
// concurrent use.
type Balancer interface {
	Pick(tried []*Backend) *Backend
}

var (
	_ Balancer = (*RoundRobin)(nil)
	_ Balancer = (*Weighted)(nil)
	_ Balancer = (*LeastConn)(nil)
	_ Balancer = (*Pool)(nil)
)

func skip(b *Backend, tried []*Backend) bool {
	if !b.Available() || b.Full() {
		return true
	}
	for _, t := range tried {
		if t == b {
			return true
		}
	}
	return false
}

// RoundRobin hands requests to each backend in turn, passing over those
// that are out.
type RoundRobin struct {
	backends []*Backend
	next     atomic.Uint32
}

// NewRoundRobin returns a round-robin policy over backends.
func NewRoundRobin(backends []*Backend) *RoundRobin { return &RoundRobin{backends: backends} }

// Pick returns the next available backend in turn.
func (r *RoundRobin) Pick(tried []*Backend) *Backend {
	n := uint32(len(r.backends))
	if n == 0 {
		return nil
	}
	start := r.next.Add(1) - 1
	for i := uint32(0); i < n; i++ {
		if b := r.backends[(start+i)%n]; !skip(b, tried) {
			return b
		}
	}
	return nil
}

// Weighted is nginx's smooth weighted round robin: each pick adds every
// backend's weight to its running score, takes the highest score and
// subtracts the total from it. Weights 3:1 give a,a,b,a rather than a burst
// of three a's.
type Weighted struct {
	backends []*Backend
	mu       sync.Mutex // protects current
	current  []int
}

// NewWeighted returns a smooth weighted round-robin policy over backends.
func NewWeighted(backends []*Backend) *Weighted {
	return &Weighted{backends: backends, current: make([]int, len(backends))}
}

// Pick returns the available backend with the highest running score.
func (w *Weighted) Pick(tried []*Backend) *Backend {
	w.mu.Lock()
	defer w.mu.Unlock()
	best, total := -1, 0
	for i, b := range w.backends {
		if skip(b, tried) {
			continue
		}
		weight := max(b.Weight, 1)
		w.current[i] += weight
		total += weight
		if best < 0 || w.current[i] > w.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	w.current[best] -= total
	return w.backends[best]
}

// LeastConn picks the backend with the fewest requests in flight relative
// to its weight, as nginx's least_conn does; ties go round robin.
type LeastConn struct {
	backends []*Backend
	next     atomic.Uint32
}

// NewLeastConn returns a least-connections policy over backends.
func NewLeastConn(backends []*Backend) *LeastConn { return &LeastConn{backends: backends} }

// Pick returns the least loaded available backend.
func (l *LeastConn) Pick(tried []*Backend) *Backend {
	n := uint32(len(l.backends))
	if n == 0 {
		return nil
	}
	start := l.next.Add(1) - 1
	var best *Backend
	var bestLoad, bestWeight int64
	for i := uint32(0); i < n; i++ {
		b := l.backends[(start+i)%n]
		if skip(b, tried) {
			continue
		}
		load, weight := b.Inflight(), int64(max(b.Weight, 1))
		// load/weight < bestLoad/bestWeight without division.
		if best == nil || load*bestWeight < bestLoad*weight {
			best, bestLoad, bestWeight = b, load, weight
		}
	}
	return best
}

// Pool is a set of backends with a policy for the regular ones and the same
// policy for the backups, which get requests only while no regular backend
// is available. A Pool must not be copied.
type Pool struct {
	Backends []*Backend // all of them, Index order
	regular  Balancer
	backup   Balancer // nil when there are no backups
}

// policies are the balancing policies by the name the configuration
// uses; Policies lists the names.
var policies = map[string]func([]*Backend) Balancer{
	"round_robin": func(bs []*Backend) Balancer { return NewRoundRobin(bs) },
	"weighted":    func(bs []*Backend) Balancer { return NewWeighted(bs) },
	"least_conn":  func(bs []*Backend) Balancer { return NewLeastConn(bs) },
}

// Policies lists the names NewPool accepts, the first being the default.
var Policies = []string{"round_robin", "weighted", "least_conn"}

// NewPool builds a pool with the named policy (see Policies; empty is
// round_robin). Every backend shares h for its passive health settings.
func NewPool(policy string, backends []*Backend, h *Health) (*Pool, error) {
	if policy == "" {
		policy = Policies[0]
	}
	newPolicy := policies[policy]
	if newPolicy == nil {
		return nil, fmt.Errorf("balancer: unknown policy %q", policy)
	}
	p := &Pool{Backends: backends}
	var regular, backup []*Backend
	for i, b := range backends {
		b.Index, b.health = i, h
		if b.Backup {
			backup = append(backup, b)
		} else {
			regular = append(regular, b)
		}
	}
	p.regular = newPolicy(regular)
	if len(backup) > 0 {
		p.backup = newPolicy(backup)
	}
	return p, nil
}

// Take picks a backend as Pick does and counts a connection on it
// (TryBegin); End must follow. A backend that filled up between the pick
// and the count is passed over. It returns nil when no backend is left:
// Saturated then tells whether some were only full.
func (p *Pool) Take(tried []*Backend) *Backend {
	// Bounded: each round found a backend full just after Pick saw room.
	for range len(p.Backends) + 1 {
		b := p.Pick(tried)
		if b == nil || b.TryBegin() {
			return b
		}
	}
	return nil
}

// Saturated reports whether some backend that is up and not in tried is
// passed over only because it is full: when Take finds none, the pool is
// busy (nginx answers such a request from its queue or refuses it), not
// down.
func (p *Pool) Saturated(tried []*Backend) bool {
	for _, b := range p.Backends {
		if b.Available() && b.Full() && !slices.Contains(tried, b) {
			return true
		}
	}
	return false
}

// Pick returns a regular backend, else a backup, else nil.
func (p *Pool) Pick(tried []*Backend) *Backend {
	if b := p.regular.Pick(tried); b != nil {
		return b
	}
	if p.backup != nil {
		return p.backup.Pick(tried)
	}
	return nil
}
