package memcached

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"sessionproxy/internal/memcache"
	"sessionproxy/sessionstore"
)

// metadumpIdle is how long a node's listing may wait for the next bytes
// from the node before it gives up (memcache.Metadump's idle deadline): a
// listing of millions of sessions on a loaded machine may take long, a
// node that stops sending still ends it. A var so that tests can shorten
// it.
var metadumpIdle = 30 * time.Second

// eachKey calls fn with every session key (KeyPrefix and a valid ID) that
// n holds, in the order lru_crawler metadump lists them, each as soon as
// its line is read; key is valid only during the call. Close stops the
// listing too: a node that hangs would hold it (and a process that is
// stopping) for metadumpIdle. An error from fn ends the listing and is
// returned as is; the listing's own errors (dial, a broken or stalled
// stream, a malformed line, memcached's BUSY while another dump runs on
// the node) name the node.
func (m *Memcached) eachKey(n *node, fn func(key []byte) error) error {
	prefix := []byte(m.opts.KeyPrefix)
	var fnErr error
	timeout := max(m.opts.Timeout, time.Second)
	err := memcache.Metadump(n.Addr, timeout, metadumpIdle, m.closed, func(key []byte) error {
		if !bytes.HasPrefix(key, prefix) || !sessionstore.ValidID(key[len(prefix):]) {
			return nil // not a session of this store
		}
		fnErr = fn(key)
		return fnErr
	})
	switch {
	case err == nil || err == fnErr:
		return err
	case errors.Is(err, memcache.ErrClosed):
		return errClosed
	}
	return fmt.Errorf("listing keys of %s: %w", n.ID, err)
}
