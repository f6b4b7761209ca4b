package memcached

import (
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
	"sessionproxy/sessionstore"
)

// cluster is two real memcached nodes.
type cluster struct {
	n1, n2 *memcachedtest.Server
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{memcachedtest.Start(t), memcachedtest.Start(t)}
}

func (c *cluster) nodes() []sessionstore.Node {
	return []sessionstore.Node{{ID: "n1", Addr: c.n1.Addr}, {ID: "n2", Addr: c.n2.Addr}}
}

// newStore is a sessionstore.Store over o, built through sessionstore.New
// as the proxy builds it (this package registered itself), closed when
// the test ends.
func newStore(t *testing.T, o sessionstore.Options) *sessionstore.Store {
	t.Helper()
	if o.Memcached.ProbeInterval == 0 {
		o.Memcached.ProbeInterval = 20 * time.Millisecond
	}
	if o.Memcached.Timeout == 0 {
		// Long enough that a loaded CI machine under -race does not mark a
		// healthy node down; short enough that frozen-node tests are quick.
		o.Memcached.Timeout = 300 * time.Millisecond
	}
	s, err := sessionstore.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// peekVersion is the version of a stored value.
func peekVersion(val []byte) (uint64, error) {
	m, err := peek(val)
	return m.version, err
}
