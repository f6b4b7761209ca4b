package memcached

import "sessionproxy/sessionstore"

// meta is what the store reads of a stored value (an encoded session)
// without decoding it: which copy is newer, and when it may be dropped.
type meta struct {
	version uint64
	expires int64 // unix seconds
}

// peek returns the meta of a stored value, or sessionstore.ErrCorrupt.
func peek(val []byte) (meta, error) {
	m, err := sessionstore.PeekMeta(val)
	return meta{version: m.Version, expires: m.Expires}, err
}

// versionFlags is the memcached client flags a stored value is written
// with: the low 32 bits of its version, so that a full copy can tell
// which sessions two nodes hold at the same version without reading
// either value (handoff.go). 0 means not known: a value written before
// the flags were set, or not a session.
func versionFlags(val []byte) uint32 {
	m, err := peek(val)
	if err != nil {
		return 0
	}
	return uint32(m.version)
}

// valueCopy is a sessionstore.ValueTaker that keeps a copy.
type valueCopy struct{ val []byte }

func (c *valueCopy) Take(val []byte) error {
	c.val = append([]byte(nil), val...)
	return nil
}
