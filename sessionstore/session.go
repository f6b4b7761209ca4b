// Package sessionstore keeps sessions in an in-process hot tier (freecache)
// in front of replicated memcached nodes.
package sessionstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors returned by the Store. Callers test them with errors.Is.
var (
	// ErrNotFound means no node holds the session: it never existed,
	// expired or was invalidated.
	ErrNotFound = errors.New("sessionstore: not found")
	// ErrUnavailable means the session could not be read or written
	// because the nodes that would hold it are down.
	ErrUnavailable = errors.New("sessionstore: store unavailable")
	// ErrTooLarge means an update would make the session larger than
	// Options.MaxSize; it was not applied.
	ErrTooLarge = errors.New("sessionstore: session over max_size")
	// ErrBadName means an attribute name is not 1 to 200 of [a-z0-9_-].
	ErrBadName = errors.New("sessionstore: bad attribute name")
	// ErrCorrupt means a stored value could not be decoded.
	ErrCorrupt = errors.New("sessionstore: corrupt session")
	// ErrNotReplicated, always with ErrUnavailable, means fewer replicas
	// than Redis WaitReplicas acknowledged a write in time: the master
	// may hold it, but it did not count.
	ErrNotReplicated = errors.New("sessionstore: not acknowledged by enough replicas")
	// ErrBadID means a backend named a new session ID (X-Session-Rotate:
	// <id>) that is not well formed (ValidID) or that the store already
	// holds, live or as a tombstone; the update was not applied.
	ErrBadID = errors.New("sessionstore: unusable new session ID")
	// ErrConflict means concurrent writers kept a write from settling
	// within its bounded retries.
	ErrConflict = errors.New("sessionstore: too many concurrent writes")
)

// MaxNameLen is the longest attribute name: long enough for a framework's
// name in the adapters' encoding (CONTRACT.md section 13), where every byte
// other than a lowercase letter or a digit takes three.
const MaxNameLen = 200

// ValidName reports whether name is 1 to MaxNameLen of [a-z0-9_-].
func ValidName(name []byte) bool {
	if len(name) == 0 || len(name) > MaxNameLen {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// span locates a name and a value laid end to end in a buffer, so that the
// buffer can grow without leaving stale slices behind.
type span struct {
	off, nameLen, valueLen uint32
}

func (sp span) name(buf []byte) []byte {
	return buf[sp.off : sp.off+sp.nameLen : sp.off+sp.nameLen]
}

func (sp span) value(buf []byte) []byte {
	o := sp.off + sp.nameLen
	return buf[o : o+sp.valueLen : o+sp.valueLen]
}

func appendSpan(buf []byte, spans []span, name, value []byte) ([]byte, []span) {
	sp := span{off: uint32(len(buf)), nameLen: uint32(len(name)), valueLen: uint32(len(value))}
	buf = append(append(buf, name...), value...)
	return buf, append(spans, sp)
}

// Session is one decoded session. Its zero value is an empty session; a
// Session may be reused for many decodes without allocating again.
type Session struct {
	ID      []byte
	Created int64  // unix milliseconds
	Version uint64 // bumped by every write
	Touched int64  // unix seconds of the last write
	// Expires is when every stored copy may be dropped (unix seconds): the
	// sliding ttl after the last write, plus a quarter (see Store.expires).
	// A shared store sets its own expiry from it, also when it copies a
	// session between nodes.
	Expires int64
	Deleted bool // a tombstone left by invalidate, so that no stale copy can come back
	// TTL is this session's own idle lifetime in seconds, set by a
	// backend's X-Session-Max-Age ("remember me"); 0 is the store's.
	TTL int32

	// MovedTo and MovedAt, on a tombstone left by a rotation, are the new
	// ID and the rotation's time (unix ms): a request that began before
	// then still holds the old cookie, and its changes follow the session.
	MovedTo []byte
	MovedAt int64

	attrs []span // sorted by name, into buf
	buf   []byte
}

// Len returns the number of attributes.
func (s *Session) Len() int { return len(s.attrs) }

// Attr returns the i'th attribute in name order. The slices stay valid
// until s is changed.
func (s *Session) Attr(i int) (name, value []byte) {
	return s.attrs[i].name(s.buf), s.attrs[i].value(s.buf)
}

// Get returns the value of an attribute and whether it is set.
func (s *Session) Get(name string) ([]byte, bool) {
	i, ok := s.find([]byte(name))
	if !ok {
		return nil, false
	}
	return s.attrs[i].value(s.buf), true
}

func (s *Session) find(name []byte) (int, bool) {
	return slices.BinarySearchFunc(s.attrs, name, func(sp span, n []byte) int {
		return bytes.Compare(sp.name(s.buf), n)
	})
}

// Reset empties s, keeping its buffers.
func (s *Session) Reset() {
	*s = Session{ID: s.ID[:0], MovedTo: s.MovedTo[:0], attrs: s.attrs[:0], buf: s.buf[:0]}
}

// CopyFrom makes s a deep copy of o.
func (s *Session) CopyFrom(o *Session) {
	s.Reset()
	s.ID = append(s.ID, o.ID...)
	s.Created, s.Version, s.Touched, s.Deleted = o.Created, o.Version, o.Touched, o.Deleted
	s.Expires, s.TTL = o.Expires, o.TTL
	s.MovedTo, s.MovedAt = append(s.MovedTo, o.MovedTo...), o.MovedAt
	s.buf = append(s.buf, o.buf...)
	s.attrs = append(s.attrs, o.attrs...)
}

// The stored format, version 1:
//
//	byte     format (1)
//	byte     flags (bit 0: deleted, bit 1: moved, bit 2: expires)
//	uvarint  version
//	varint   created, unix ms
//	varint   touched, unix s
//	if expires: varint expires, unix s
//	if moved: uvarint length, new ID, varint moved at (unix ms)
//	uvarint  attribute count
//	then per attribute: uvarint name length, name, uvarint value length, value
//	if ttl (flag bit 3): varint ttl, seconds
//
// The ttl comes last so that a proxy of an earlier release, which stops
// after the attributes, still reads the session (it drops the ttl when it
// writes it).
const formatV1 = 1

const (
	flagDeleted = 1
	flagMoved   = 2
	flagExpires = 4
	flagTTL     = 8
)

// AppendEncode appends the stored form of s to dst.
func (s *Session) AppendEncode(dst []byte) []byte {
	var flags byte
	if s.Deleted {
		flags |= flagDeleted
	}
	if len(s.MovedTo) > 0 {
		flags |= flagMoved
	}
	if s.Expires != 0 {
		flags |= flagExpires
	}
	if s.TTL != 0 {
		flags |= flagTTL
	}
	dst = append(dst, formatV1, flags)
	dst = binary.AppendUvarint(dst, s.Version)
	dst = binary.AppendVarint(dst, s.Created)
	dst = binary.AppendVarint(dst, s.Touched)
	if s.Expires != 0 {
		dst = binary.AppendVarint(dst, s.Expires)
	}
	if len(s.MovedTo) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(s.MovedTo)))
		dst = append(dst, s.MovedTo...)
		dst = binary.AppendVarint(dst, s.MovedAt)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.attrs)))
	for _, sp := range s.attrs {
		dst = binary.AppendUvarint(dst, uint64(sp.nameLen))
		dst = append(dst, sp.name(s.buf)...)
		dst = binary.AppendUvarint(dst, uint64(sp.valueLen))
		dst = append(dst, sp.value(s.buf)...)
	}
	if s.TTL != 0 {
		dst = binary.AppendVarint(dst, int64(s.TTL))
	}
	return dst
}

// Decode replaces s (all but its ID) with the session stored in data.
// data is copied; s does not keep it.
func (s *Session) Decode(data []byte) error {
	id := s.ID
	s.Reset()
	s.ID = id
	if len(data) < 2 || data[0] != formatV1 {
		return ErrCorrupt
	}
	s.Deleted = data[1]&flagDeleted != 0
	r := reader{b: data[2:]}
	s.Version = r.uvarint()
	s.Created = r.varint()
	s.Touched = r.varint()
	if data[1]&flagExpires != 0 {
		s.Expires = r.varint()
	}
	if data[1]&flagMoved != 0 {
		to := r.bytes()
		s.MovedAt = r.varint()
		if r.err || len(to) == 0 {
			s.Reset()
			s.ID = id
			return ErrCorrupt
		}
		s.MovedTo = append(s.MovedTo, to...)
	}
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		return ErrCorrupt
	}
	var prev []byte
	for i := uint64(0); i < n; i++ {
		name := r.bytes()
		value := r.bytes()
		// Only what Update can make: a forged or damaged value in the
		// shared store must not reach a backend as a malformed header.
		if !r.err && (!ValidName(name) || (i > 0 && bytes.Compare(name, prev) <= 0)) {
			r.err = true
		}
		prev = name
		if r.err {
			s.Reset()
			s.ID = id
			return ErrCorrupt
		}
		s.buf, s.attrs = appendSpan(s.buf, s.attrs, name, value)
	}
	if data[1]&flagTTL != 0 {
		ttl := r.varint()
		if r.err || ttl <= 0 || ttl > MaxTTL {
			s.Reset()
			s.ID = id
			return ErrCorrupt
		}
		s.TTL = int32(ttl)
	}
	return nil
}

// meta is what a shared store needs of a stored value: which copy is
// newer, and when it may be dropped.
type meta struct {
	version uint64
	deleted bool
	expires int64 // unix seconds; 0 in values written before it was kept
}

// peek returns the meta of a stored value without decoding the rest.
func peek(data []byte) (meta, error) {
	if len(data) < 2 || data[0] != formatV1 {
		return meta{}, ErrCorrupt
	}
	r := reader{b: data[2:]}
	m := meta{version: r.uvarint(), deleted: data[1]&flagDeleted != 0}
	r.varint() // created
	touched := r.varint()
	if data[1]&flagExpires != 0 {
		m.expires = r.varint()
	} else {
		m.expires = touched + legacyLifetime
	}
	if r.err {
		return meta{}, ErrCorrupt
	}
	return m, nil
}

// legacyLifetime is how long a value written without Expires is kept past
// its last write: the default ttl plus a quarter.
const legacyLifetime = int64(DefaultTTL/time.Second) * 5 / 4

// ValueMeta is what a shared store reads of a stored value without
// decoding it: the version its writes compare, and when it expires.
type ValueMeta struct {
	Version uint64
	Expires int64 // unix seconds
}

// PeekMeta returns the version and expiry of a stored value (an encoded
// session) without decoding the rest, or ErrCorrupt.
func PeekMeta(val []byte) (ValueMeta, error) {
	m, err := peek(val)
	return ValueMeta{Version: m.version, Expires: m.expires}, err
}

// peekVersion returns the version and deleted flag of a stored value.
func peekVersion(data []byte) (uint64, bool, error) {
	m, err := peek(data)
	return m.version, m.deleted, err
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	l := r.uvarint()
	if r.err || l > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	v := r.b[:l:l]
	r.b = r.b[l:]
	return v
}

// Update is what a backend asked for in one response. Its zero value
// changes nothing. An Update may be reused after Reset.
type Update struct {
	Invalidate bool  // delete the session
	Rotate     bool  // move the session to a new ID
	Created    int64 // creation time (unix ms) of a session this update creates; 0 means now
	// Begun is when the request that made this update began (unix ms).
	// If the session was rotated after that, the update follows it to its
	// new ID: the request was sent with the old cookie before the client
	// could know better. 0 never follows a rotation.
	Begun int64

	sets     []span // name=value; a later entry for a name wins
	unsets   []span // names (value empty)
	buf      []byte
	rotateTo []byte // the new ID the backend drew, if it named one (RotateTo)
	ttl      int32  // the session's own ttl in seconds (SetTTL), when ttlSet
	ttlSet   bool
}

// Reset empties u, keeping its buffers.
func (u *Update) Reset() {
	*u = Update{sets: u.sets[:0], unsets: u.unsets[:0], buf: u.buf[:0], rotateTo: u.rotateTo[:0]}
}

// RotateTo records a rotation to id, a new session ID the backend drew
// itself because its framework must know it at once (a servlet's
// changeSessionId returns it). It returns an error wrapping ErrBadID, and
// records nothing, if id is not well formed; Commit refuses it with
// ErrBadID if the store already holds it. The same id also names the new
// session that an Invalidate with sets starts.
func (u *Update) RotateTo(id []byte) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q is neither 1 nor a well-formed session ID", ErrBadID, id)
	}
	u.Rotate = true
	u.rotateTo = append(u.rotateTo[:0], id...)
	return nil
}

// Empty reports whether u asks for nothing.
func (u *Update) Empty() bool {
	return len(u.sets) == 0 && len(u.unsets) == 0 && !u.Invalidate && !u.Rotate && !u.ttlSet
}

// Set records name=value, lower-casing name. It returns an error wrapping
// ErrBadName, and records nothing, if the name is not valid.
func (u *Update) Set(name, value []byte) error {
	start := len(u.buf)
	u.buf = appendLower(u.buf, name)
	if !ValidName(u.buf[start:]) {
		u.buf = u.buf[:start]
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	u.buf = append(u.buf, value...)
	u.sets = append(u.sets, span{off: uint32(start), nameLen: uint32(len(name)), valueLen: uint32(len(value))})
	return nil
}

// Unset records the removal of name, lower-casing it.
func (u *Update) Unset(name []byte) error {
	start := len(u.buf)
	u.buf = appendLower(u.buf, name)
	if !ValidName(u.buf[start:]) {
		u.buf = u.buf[:start]
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	u.unsets = append(u.unsets, span{off: uint32(start), nameLen: uint32(len(name))})
	return nil
}

func appendLower(dst, s []byte) []byte {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// ApplyTo writes into dst the session base with u's sets and unsets
// applied (applyTo), and nothing of the lifecycle around a commit: for a
// shared store's tests, which build stored values of a given size.
func (u *Update) ApplyTo(dst, base *Session) { u.applyTo(dst, base) }

// applyTo writes into dst the session base with u's sets and unsets
// applied. Unsets apply first, then sets in order, so a name both set and
// unset in one response ends up set.
func (u *Update) applyTo(dst, base *Session) {
	dst.Reset()
	dst.ID = append(dst.ID, base.ID...)
	dst.Created, dst.Version, dst.Touched, dst.TTL = base.Created, base.Version, base.Touched, base.TTL
	if u.ttlSet {
		dst.TTL = u.ttl
	}
	for _, sp := range base.attrs {
		name := sp.name(base.buf)
		if u.changes(name) {
			continue
		}
		dst.buf, dst.attrs = appendSpan(dst.buf, dst.attrs, name, sp.value(base.buf))
	}
	for i, sp := range u.sets {
		name := sp.name(u.buf)
		if u.setLater(i, name) {
			continue
		}
		dst.buf, dst.attrs = appendSpan(dst.buf, dst.attrs, name, sp.value(u.buf))
	}
	slices.SortFunc(dst.attrs, func(a, b span) int {
		return bytes.Compare(a.name(dst.buf), b.name(dst.buf))
	})
}

// changes reports whether u sets or unsets name.
func (u *Update) changes(name []byte) bool {
	for _, sp := range u.unsets {
		if bytes.Equal(sp.name(u.buf), name) {
			return true
		}
	}
	for _, sp := range u.sets {
		if bytes.Equal(sp.name(u.buf), name) {
			return true
		}
	}
	return false
}

// setLater reports whether a set after index i names the same attribute.
func (u *Update) setLater(i int, name []byte) bool {
	for _, sp := range u.sets[i+1:] {
		if bytes.Equal(sp.name(u.buf), name) {
			return true
		}
	}
	return false
}
