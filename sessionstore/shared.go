package sessionstore

import (
	"math/rand/v2"
	"time"
)

// Shared is where sessions live beyond this process, under the Store's
// hot tier: memcached nodes (sessionstore/memcached), Redis
// (sessionstore/redis), or another kind of store. The Store keeps the
// codec, the hot tier and the session lifecycle in front of it, written
// once for every kind.
//
// Values are encoded sessions. A Shared store orders copies by the version
// their encoding carries and never replaces a copy with an older one
// except through Put; it expires each copy when the encoding says (the
// Expires field). Implementations are safe for concurrent use.
type Shared interface {
	// Get returns the newest copy of id: ErrNotFound when none is held,
	// ErrUnavailable when no replica could answer.
	Get(id []byte) ([]byte, error)
	// Merge stores the value mg builds on the newest copy of id, and has
	// it build again when another writer got in between. It returns mg's
	// own error unchanged, and ErrUnavailable when no replica took the
	// write.
	Merge(id []byte, mg Merger) error
	// Put stores val over whatever is held. Only for a caller whose copy
	// is authoritative (it is the one writer of the session).
	Put(id, val []byte) error
	// PutIfNewer stores val unless a copy at its version or a newer one is
	// held, and returns ErrUnavailable when no replica took it.
	PutIfNewer(id, val []byte) error
	// Status reports each node or server behind the store.
	Status() []NodeState
	// Kind names the store in metrics and logs ("memcached").
	Kind() string
	// Close stops background work.
	Close()
}

// A ServerFinder is a Shared store whose Status lists the servers it finds
// by itself, named by address, a list that may grow (Redis: a Cluster's
// promoted replica), rather than nodes configured one by one with IDs and
// failover states (Memcached). Status pages and metrics show the two
// apart (Store.FindsServers).
type ServerFinder interface {
	Shared
	FindsServers() bool
}

// A ValueTaker is handed a stored value that is valid only during Take:
// it decodes or copies what it needs.
type ValueTaker interface {
	Take(val []byte) error
}

// A viewer is a Shared store that can lend a value to a ValueTaker instead
// of returning a copy: a cold read then allocates nothing.
type viewer interface {
	View(id []byte, to ValueTaker) error
}

// view hands the newest copy of id in s to to, lent if s can lend it.
func view(s Shared, id []byte, to ValueTaker) error {
	if v, ok := s.(viewer); ok {
		return v.View(id, to)
	}
	val, err := s.Get(id)
	if err != nil {
		return err
	}
	return to.Take(val)
}

// Merger builds the value a Merge stores.
type Merger interface {
	// Merge returns the value to store, given cur, the newest copy held
	// (nil if none).
	Merge(cur []byte) ([]byte, error)
}

// NodeState is one node's configuration, health and catch-up counters.
type NodeState struct {
	Node
	State           State
	Up              bool          // State is StateUp: the node serves reads
	HandoffPending  int           // missed writes waiting for the node's return
	HandoffReplayed int64         // missed writes replayed to it since start
	Copied          int64         // sessions copied back by full copies
	Catchups        int64         // completed catch-ups
	LastCatchup     time.Duration // how long the last catch-up took
}

// embedded is the Shared store of a Store with no nodes: the hot tier is
// the whole store, so there is never anything beyond it to read, and a
// write has nowhere else to go.
type embedded struct{}

func (embedded) Get([]byte) ([]byte, error) { return nil, ErrNotFound }

func (embedded) Merge(_ []byte, mg Merger) error {
	_, err := mg.Merge(nil)
	return err
}

func (embedded) Put(_, _ []byte) error        { return nil }
func (embedded) PutIfNewer(_, _ []byte) error { return nil }
func (embedded) Status() []NodeState          { return nil }
func (embedded) Kind() string                 { return KindLocal }
func (embedded) Close()                       {}

// Node names one memcached server.
type Node struct {
	ID       string // name used in logs, /status and metrics
	Addr     string // host:port
	Failover bool   // holds sessions only while regular nodes are missing
}

// State is a memcached node's place in the failover round trip.
type State int32

// The states of a node. A node that fails goes down; once it answers again
// it is catching up: it takes writes while the store copies back what it
// missed (hinted handoff) and what it lost, and only then is it up and
// read from. A node that was never read while catching up can never serve
// a version older than one its replicas have.
const (
	StateUp State = iota
	StateDown
	StateCatchingUp
)

// String returns "up", "down" or "catching_up", as /status shows them.
func (st State) String() string {
	switch st {
	case StateDown:
		return "down"
	case StateCatchingUp:
		return "catching_up"
	}
	return "up"
}

// MaxCASTries bounds the retries of a write that loses CAS races to other
// proxy instances, after which a shared store's Merge gives up with
// ErrConflict; writers within one process are serialised first.
const MaxCASTries = 16

// Backoff waits a random while, growing with the tries, before a write
// that lost a race tries again: proxies that collided on one session would
// otherwise collide again in lockstep.
func Backoff(try int) {
	limit := time.Duration(100<<min(try, 6)) * time.Microsecond // up to 6.4ms
	time.Sleep(rand.N(limit))
}
