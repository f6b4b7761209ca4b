package sessionstore

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coocood/freecache"
)

// Options configure a Store. A zero field means the default in its comment.
type Options struct {
	// Memcached, when it names nodes, is where sessions are kept beyond
	// this process. With no nodes and no Shared, the hot tier is the
	// whole store (sessions live in this process only).
	Memcached MemcachedOptions
	// Redis, when it names addresses, keeps sessions on Redis or a Redis
	// Cluster instead; it excludes Memcached.
	Redis RedisOptions
	// Shared, if not nil, is the store to keep sessions in instead of
	// Memcached. The Store closes it.
	Shared Shared

	TTL time.Duration // sliding idle lifetime of a session (default 30m)
	// MaxAge is the absolute lifetime of a session from its creation,
	// whatever its activity: one past it is ended on its next load (Open),
	// as if invalidated. 0: none.
	MaxAge  time.Duration
	MaxSize int // largest encoded session (default 64 KiB)

	LocalSize int // bytes of the freecache hot tier; 0 turns it off
	// LocalTTL bounds how long the hot tier trusts its copy of a session:
	// 0 trusts it until the session expires (this process is the one
	// writer); >0 re-reads from the shared store after that long; AutoTTL
	// trusts it as 0 while no other process's presence mark is on the
	// shared store, and re-reads after AutoCrowdedTTL once one is
	// (peers.go). Server-assisted invalidation (Redis client_cache)
	// keeps the tier coherent whatever it is.
	LocalTTL time.Duration

	// InstanceID names this process in the presence mark it keeps on the
	// shared store (default: random, new for each Store). Processes must
	// not share one; a reload keeps it, so that the Store it builds does
	// not take the one it replaces for another proxy.
	InstanceID string

	// Async writes to the shared store in the background: the hot tier
	// holds the new version at once (read-your-writes through this
	// process) and a queue of AsyncQueue sessions (default 4096) feeds the
	// writers; when it is full the write is done inline, never dropped. It
	// needs the hot tier as the authoritative copy (see Check).
	Async      bool
	AsyncQueue int

	// Principal, when it names an attribute, indexes sessions by the
	// principal it holds (principal.go).
	Principal PrincipalOptions

	// CreateAlways stores every new session, even when the backend sets
	// nothing; by default a session is created on its first write.
	CreateAlways bool
	// NewOnUnavailable starts a fresh session when a client's session
	// cannot be loaded because the store is down; by default Open fails
	// with ErrUnavailable (never a silent new session).
	NewOnUnavailable bool

	// Previous, if not nil, is the store this one replaces (a reload):
	// its hot tier is kept when LocalSize is unchanged, so sessions stay
	// warm.
	Previous *Store

	Logger *slog.Logger // node state changes, write-back (default slog.Default())
}

// Defaults of Options.
const (
	DefaultTTL        = 30 * time.Minute
	DefaultMaxSize    = 64 << 10
	DefaultAsyncQueue = 4096
)

// AutoTTL, as Options.LocalTTL, trusts the hot tier while this process is
// the only one on the shared store and bounds it to AutoCrowdedTTL while
// another is seen there (peers.go).
const AutoTTL time.Duration = -1

// AutoCrowdedTTL is how long the hot tier trusts a copy under AutoTTL
// while another process uses the same shared store: how stale a read
// through one proxy can be after a change through another.
const AutoCrowdedTTL = time.Second

// ErrAsyncNeedsLocal is Check's answer to asynchronous writes without an
// authoritative hot tier: without it, a client's next request could read
// the shared store before its change got there.
var ErrAsyncNeedsLocal = errors.New("async writes need the hot tier as the authoritative copy (local_cache.size above 0 and local_cache.ttl: 0 or auto)")

// ErrAsyncWaitReplicas is Check's answer to asynchronous writes with Redis
// WaitReplicas: a write the client saw answered must be on the replicas,
// and an asynchronous one is answered before it is written at all.
var ErrAsyncWaitReplicas = errors.New("async writes are answered before they reach redis, which redis wait_replicas rules out")

// ErrBadLocalTTL is Check's answer to a negative LocalTTL other than
// AutoTTL.
var ErrBadLocalTTL = errors.New("the hot tier's ttl must be 0, auto or positive")

// ErrNowhere is Check's answer to a store with no shared store and no hot
// tier.
var ErrNowhere = errors.New("no shared store and no hot tier: sessions would be kept nowhere")

// ErrTwoStores is Check's answer to both memcached nodes and Redis
// addresses.
var ErrTwoStores = errors.New("memcached nodes and redis addresses exclude each other: choose one shared store")

// ErrAsyncClientCache is Check's answer to asynchronous writes with Redis
// client-side caching: the server's invalidation of a queued session's
// older copy would evict the only copy of its change before it is written.
var ErrAsyncClientCache = errors.New("async writes need the hot tier as the authoritative copy, which redis client_cache (several proxies writing) rules out")

// Check reports options that cannot work together: it is the one place
// that says so (config asks it too). ErrTwoStores is reported with the
// first of the others, if any (errors.Join): two problems a user fixes
// apart.
func (o *Options) Check() error {
	if o.LocalTTL < 0 && o.LocalTTL != AutoTTL {
		return ErrBadLocalTTL
	}
	var two error
	if len(o.Memcached.Nodes) > 0 && len(o.Redis.Addrs) > 0 {
		two = ErrTwoStores
	}
	return errors.Join(two, o.checkModes())
}

// checkModes is the first write mode problem of o.
func (o *Options) checkModes() error {
	// With async, AutoTTL means 0: the hot tier is the authoritative copy.
	if o.Async && (o.LocalSize <= 0 || (o.LocalTTL != 0 && o.LocalTTL != AutoTTL)) {
		return ErrAsyncNeedsLocal
	}
	if o.Async && len(o.Redis.Addrs) > 0 && o.Redis.ClientCache {
		return ErrAsyncClientCache
	}
	if o.Async && len(o.Redis.Addrs) > 0 && o.Redis.WaitReplicas > 0 {
		return ErrAsyncWaitReplicas
	}
	if len(o.Memcached.Nodes) == 0 && len(o.Redis.Addrs) == 0 && o.Shared == nil && o.LocalSize <= 0 {
		return ErrNowhere
	}
	return nil
}

// Source says where Load found a session.
type Source int

// Sources of a loaded session.
const (
	FromLocal Source = iota
	FromShared
)

// Store holds sessions: an in-process freecache tier (the hot tier) in
// front of a Shared store, and the session lifecycle (lifecycle.go). Safe
// for concurrent use by multiple goroutines.
type Store struct {
	opts   Options
	local  *freecache.Cache // nil when off
	shared Shared           // embedded{} when there is none
	mode   writeMode        // chosen once from the options

	// stripes serialise the writes of one session within this process, so
	// that concurrent requests merge their changes instead of racing;
	// across processes, the shared store's Merge does it.
	stripes [256]sync.Mutex

	flight flights // merges concurrent shared loads of one session

	mu     sync.Mutex          // protects dirty
	dirty  map[string]struct{} // sessions changed while the shared store could take nothing
	ndirty atomic.Int64        // len(dirty), read without mu on every write

	async *asyncState // nil unless Options.Async

	principals *principals // nil unless Options.Principal names an attribute

	coherent *coherence // nil unless the shared store reports changes (coherent.go)

	// auto: LocalTTL AutoTTL with a hot tier that nothing else keeps
	// coherent. crowded: another process's presence mark is on the shared
	// store, so the hot tier is bounded (peers.go).
	auto        bool
	crowded     atomic.Bool
	crowdedSeen bool // the last state peersChanged logged; only it uses this
	// others: another process's presence mark was on the shared store at
	// the last look, whatever the ttl (keeps).
	others atomic.Bool

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New returns a Store.
func New(o Options) (*Store, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if err := o.Check(); err != nil {
		return nil, fmt.Errorf("sessionstore: %w", err)
	}
	if o.InstanceID == "" {
		o.InstanceID = NewInstanceID()
	}
	if o.Memcached.InstanceID == "" {
		o.Memcached.InstanceID = o.InstanceID
	}
	if o.Redis.InstanceID == "" {
		o.Redis.InstanceID = o.InstanceID
	}
	s := &Store{opts: o, dirty: map[string]struct{}{}, closed: make(chan struct{})}
	switch prev := o.Previous; {
	case prev != nil && prev.local != nil && prev.opts.LocalSize == o.LocalSize:
		s.local = prev.local
	case o.LocalSize > 0:
		s.local = freecache.NewCache(o.LocalSize)
	}
	switch {
	case o.Shared != nil:
		s.shared = o.Shared
	case len(o.Memcached.Nodes) > 0:
		if o.Memcached.Logger == nil {
			o.Memcached.Logger = o.Logger
		}
		open := opener(KindMemcached)
		if open == nil {
			return nil, errNotLinked(KindMemcached)
		}
		m, err := open(o)
		if err != nil {
			return nil, err
		}
		s.shared = m
	case len(o.Redis.Addrs) > 0:
		if o.Redis.Logger == nil {
			o.Redis.Logger = o.Logger
		}
		open := opener(KindRedis)
		if open == nil {
			return nil, errNotLinked(KindRedis)
		}
		r, err := open(o)
		if err != nil {
			return nil, err
		}
		s.shared = r
	default:
		s.shared = embedded{}
	}
	s.principals = newPrincipals(s, o.Principal)
	coherent := s.watch()
	if o.LocalTTL == AutoTTL {
		// As 0 until another process is seen; with async, or when the
		// shared store's invalidations keep the tier coherent, for good.
		s.opts.LocalTTL = 0
		s.auto = s.local != nil && !coherent && !o.Async
	}
	switch {
	case o.Async:
		s.startAsync()
		s.mode = asyncMode{}
	case s.auto:
		s.mode = autoMode{}
	case s.local != nil && s.opts.LocalTTL == 0 && !coherent:
		s.mode = trustedMode{}
	default:
		s.mode = casMode{}
	}
	s.watchPeers()
	s.wg.Add(1)
	go s.writeBackLoop()
	return s, nil
}

// The kinds of shared store, as Kind names them.
const (
	KindMemcached = "memcached"
	KindRedis     = "redis"
	KindLocal     = "local"
)

// An Opener builds the shared store of its kind for o.
type Opener func(o Options) (Shared, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{}
)

// Register makes New build the shared store of kind with open when the
// options ask for it. A store in a package of its own registers itself
// when imported (sessionstore/memcached, sessionstore/redis), so that
// only a program that links it in has its client.
func Register(kind string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[kind] = open
}

func opener(kind string) Opener {
	openersMu.Lock()
	defer openersMu.Unlock()
	return openers[kind]
}

func errNotLinked(kind string) error {
	return fmt.Errorf("sessionstore: no %s store in this program (import sessionproxy/sessionstore/%s)", kind, kind)
}

// Close stops background work, the shared store's included; call Flush
// first to write what is queued. The Store must not be used afterwards;
// closing it again does nothing.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.shared.Close()
	})
	s.wg.Wait()
}

// Reconciled blocks until the shared store's start-up work is over (for
// memcached, the copy between nodes that brings each what it missed while
// no proxy ran); at once for a store that has none.
func (s *Store) Reconciled() {
	if r, ok := s.shared.(interface{ Reconciled() }); ok {
		r.Reconciled()
	}
}

// Embedded reports whether the store has no shared store and keeps
// sessions in this process only.
func (s *Store) Embedded() bool { _, ok := s.shared.(embedded); return ok }

// Kind names the shared store: "memcached", "redis" or "local".
func (s *Store) Kind() string { return s.shared.Kind() }

// Nodes returns every node of the shared store and its state, in
// configuration order.
func (s *Store) Nodes() []NodeState { return s.shared.Status() }

// FindsServers reports whether the shared store finds its servers by
// itself and names them by address (ServerFinder: Redis), rather than
// having nodes configured one by one, with IDs and failover states.
func (s *Store) FindsServers() bool {
	f, ok := s.shared.(ServerFinder)
	return ok && f.FindsServers()
}

// ConfiguredNodes returns Nodes when the shared store's nodes are
// configured one by one (memcached), and nil when it finds its servers
// (FindsServers) or has none.
func (s *Store) ConfiguredNodes() []NodeState {
	if s.FindsServers() {
		return nil
	}
	return s.Nodes()
}

// LocalStats returns the hot tier's entry count and hit rate (zeros when
// it is off).
func (s *Store) LocalStats() (entries int64, hitRate float64) {
	if s.local == nil {
		return 0, 0
	}
	return s.local.EntryCount(), s.local.HitRate()
}

func (s *Store) logger() *slog.Logger {
	if s.opts.Logger == nil {
		return slog.Default()
	}
	return s.opts.Logger
}

// expires is when the copies of a session last written at touched may be
// dropped: the TTL plus a quarter, because an unchanged session is only
// rewritten once a quarter of the TTL has passed (needsRefresh).
func (s *Store) expires(touched int64) int64 {
	return touched + int64((s.opts.TTL+s.opts.TTL/4+time.Second-1)/time.Second)
}

// localExpiry is the freecache lifetime of an entry written or read now.
func (s *Store) localExpiry(sess *Session) int {
	exp := sess.Expires
	if exp == 0 {
		exp = s.expires(sess.Touched)
	}
	left := exp - time.Now().Unix()
	ttl := s.opts.LocalTTL
	if s.crowded.Load() {
		ttl = AutoCrowdedTTL
	}
	if ttl > 0 {
		left = min(left, int64((ttl+time.Second-1)/time.Second))
	}
	return int(max(left, 1))
}

// needsRefresh reports whether a session that is being used but not
// changed should be written again to keep it alive: once a quarter of the
// TTL has passed since its last write.
func (s *Store) needsRefresh(sess *Session) bool {
	return s.refreshDue(sess)
}

// setLocal caches an encoded session. An entry too large for freecache
// (about LocalSize/1024) is simply not cached locally.
func (s *Store) setLocal(id, enc []byte, sess *Session) {
	if s.local == nil {
		return
	}
	exp := s.localExpiry(sess)
	if s.isDirty(id) {
		exp = s.keptExpiry(sess.Expires)
	}
	if err := s.local.Set(id, enc, exp); err != nil {
		s.local.Del(id)
	}
}

// Load reads the session id into out: from the hot tier, else from the
// shared store (which fills the hot tier). It returns ErrNotFound when the
// session does not exist (or was invalidated) and ErrUnavailable when the
// shared store could not answer.
func (s *Store) Load(id []byte, out *Session) (Source, error) {
	out.ID = append(out.ID[:0], id...)
	if s.local != nil {
		if err := s.local.GetFn(id, out.Decode); err == nil {
			if out.Deleted {
				return FromLocal, ErrNotFound
			}
			return FromLocal, nil
		}
	}
	fl, lead := s.flight.join(id)
	var err error
	if lead {
		fl.store, fl.out, fl.gen = s, out, s.coherent.gen(id)
		err = view(s.shared, id, fl)
		s.flight.land(fl, err)
	} else {
		err = fl.follow(out)
	}
	if err != nil {
		return FromShared, err
	}
	if out.Deleted {
		return FromShared, ErrNotFound
	}
	return FromShared, nil
}

func (s *Store) stripe(id []byte) *sync.Mutex {
	return &s.stripes[hashID(id)%uint64(len(s.stripes))]
}

func tooLarge(size, limit int) error {
	return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, size, limit)
}
