// Package balancer picks the backend for each request and tracks backend health.
package balancer

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Backend is one upstream server and its live state. Its state fields are
// atomics so that every request can read them without a lock. A Backend must
// not be copied after first use.
type Backend struct {
	URL  string // as configured, e.g. http://127.0.0.1:9001 or unix:/run/app.sock
	Addr string // host:port to dial, or the socket's path when Network is "unix"
	// Network is what Addr is dialed over: "unix" for a unix: URL, else
	// "" (TCP).
	Network string
	Weight  int  // weighted policy share; values below 1 count as 1
	Backup  bool // used only while no regular backend is available
	Index   int  // position in its Pool's Backends, for per-backend tables kept by callers
	// MaxConns caps the backend's active connections: requests in flight
	// and open WebSocket tunnels, as nginx's max_conns does. A full
	// backend is passed over by Pick, like one that is down, but is not
	// marked down. 0 means DefaultMaxConns.
	MaxConns int

	health *Health // nil: failures never take it out

	inflight  atomic.Int64 // requests and tunnels being served now, unless shared is set
	served    atomic.Uint64
	fails     atomic.Int32  // consecutive passive failures
	failures  atomic.Uint64 // every failure, for a counter
	lastFail  atomic.Int64  // unix nanos of the last failure
	downUntil atomic.Int64  // unix nanos; passive failures keep it out until then
	checkDown atomic.Bool   // the active check failed last time
	down      atomic.Bool   // the state last logged, so each change is logged once

	// checkClient is the active check's client of a unix: backend.
	checkClient atomic.Pointer[http.Client]

	// shared, when set by Adopt, is the inflight of the Backend this one
	// replaced, counted by both.
	shared atomic.Pointer[atomic.Int64]
}

// DefaultMaxConns is Backend.MaxConns when it is 0, and config's
// max_conns default, owned here because the balancer enforces it
// (Pool.Take). 2048 was the proxy's per-backend connection cap before
// max_conns existed, kept so that the limit a backend sees did not
// change; unlike nginx's max_conns it is never off, as a limit off by
// mistake let one client's 3,000 tunnels become 3,000 backend
// connections.
const DefaultMaxConns = 2048

// Health holds the passive health settings shared by a pool's backends. Its
// zero value never takes a backend out.
type Health struct {
	MaxFails    int           // consecutive failures that take a backend out; 0 disables
	FailTimeout time.Duration // how long it stays out, and the window failures must fall in
	Logger      *slog.Logger  // state changes; nil means slog.Default()
}

func (h *Health) logger() *slog.Logger {
	if h == nil || h.Logger == nil {
		return slog.Default()
	}
	return h.Logger
}

// Available reports whether the backend may be given a request: neither its
// active check nor recent passive failures have taken it out.
func (b *Backend) Available() bool {
	if b.checkDown.Load() {
		return false
	}
	if du := b.downUntil.Load(); du != 0 && time.Now().UnixNano() < du {
		return false
	}
	return true
}

// Inflight returns the number of requests and tunnels the backend is
// serving now.
func (b *Backend) Inflight() int64 { return b.active().Load() }

// active is the counter of the backend's requests and tunnels.
func (b *Backend) active() *atomic.Int64 {
	if c := b.shared.Load(); c != nil {
		return c
	}
	return &b.inflight
}

// Adopt makes b count its requests and tunnels together with prev's, the
// Backend of the same server that b replaces (a reload builds new
// Backends): the tunnels still open on prev keep counting against b's
// MaxConns, and least_conn sees them. Call it before b is used.
func (b *Backend) Adopt(prev *Backend) { b.shared.Store(prev.active()) }

// Fails returns the current count of consecutive failures.
func (b *Backend) Fails() int { return int(b.fails.Load()) }

// Failures returns how many failures Fail has recorded, ever.
func (b *Backend) Failures() uint64 { return b.failures.Load() }

// Served returns how many requests the backend has been given.
func (b *Backend) Served() uint64 { return b.served.Load() }

// Begin counts a request as started on the backend; End must follow.
// Unlike TryBegin it ignores MaxConns.
func (b *Backend) Begin() {
	b.active().Add(1)
	b.served.Add(1)
}

// Limit returns the cap on the backend's active connections: MaxConns,
// or DefaultMaxConns when it is 0.
func (b *Backend) Limit() int {
	if b.MaxConns <= 0 {
		return DefaultMaxConns
	}
	return b.MaxConns
}

// Full reports whether the backend has Limit active connections.
func (b *Backend) Full() bool { return b.Inflight() >= int64(b.Limit()) }

// TryBegin is Begin unless the backend is full; false means nothing was
// counted. The check and the count are one step, so that concurrent
// requests cannot together take a backend past its limit.
func (b *Backend) TryBegin() bool {
	limit, active := int64(b.Limit()), b.active()
	for {
		n := active.Load()
		if n >= limit {
			return false
		}
		if active.CompareAndSwap(n, n+1) {
			b.served.Add(1)
			return true
		}
	}
}

// End counts a request as finished.
func (b *Backend) End() { b.active().Add(-1) }

// Fail records a failed request (connection refused, timeout, invalid
// response). MaxFails of them within FailTimeout take the backend out for
// FailTimeout. As in nginx, a backend that comes back after its time out
// goes out again on its first failure.
func (b *Backend) Fail() {
	h := b.health
	now := time.Now().UnixNano()
	if last := b.lastFail.Swap(now); h != nil && now-last > int64(h.FailTimeout) && !b.down.Load() {
		b.fails.Store(0)
	}
	n := b.fails.Add(1)
	b.failures.Add(1)
	if h == nil || h.MaxFails <= 0 || int(n) < h.MaxFails {
		return
	}
	b.downUntil.Store(now + int64(h.FailTimeout))
	if b.down.CompareAndSwap(false, true) {
		h.logger().Warn("backend down", "backend", b.URL, "fails", n, "retry_in", h.FailTimeout)
	}
}

// Succeed records a good response and clears passive failures.
func (b *Backend) Succeed() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.downUntil.Load() != 0 {
		b.downUntil.Store(0)
	}
	if b.down.Load() && !b.checkDown.Load() && b.down.CompareAndSwap(true, false) {
		b.health.logger().Info("backend up", "backend", b.URL)
	}
}

// setChecked records the outcome of an active health check.
func (b *Backend) setChecked(ok bool, err error) {
	if ok {
		if b.checkDown.CompareAndSwap(true, false) {
			b.fails.Store(0)
			b.downUntil.Store(0)
			if b.down.CompareAndSwap(true, false) {
				b.health.logger().Info("backend up", "backend", b.URL, "by", "health check")
			}
		}
		return
	}
	b.checkDown.Store(true)
	if b.down.CompareAndSwap(false, true) {
		b.health.logger().Warn("backend down", "backend", b.URL, "by", "health check", "error", err)
	}
}
