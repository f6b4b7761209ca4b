package sessionstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The principal index (CONTRACT section 16): for each principal (the
// logged-in user an attribute names), the IDs of its sessions, kept in the
// shared store itself so that every proxy sees one index. It is stored as
// a value of the session codec under an ID derived from the principal, so
// that each kind of shared store keeps, replicates, repairs and
// compare-and-swaps it exactly as it does a session (memcached: on every
// replica, newest version wins, hints and copies as for sessions; Redis:
// one key, so on one Cluster slot). The value carries the deleted flag: a
// client that sent the index's ID as its cookie finds no session, and a
// backend can never rotate onto it (the store holds it).

// PrincipalOptions configure the principal index. The zero value turns it
// off: the request path then does nothing more than before.
type PrincipalOptions struct {
	// Attr is the attribute naming the logged-in user (lower case, a
	// valid attribute name); "" turns the index off.
	Attr string
	// Max, above 0, is how many sessions one principal may have: a new
	// one beyond it ends the least recently used of the others.
	Max int
	// Bound is how many sessions one index holds at most (default
	// DefaultIndexBound); one that would outgrow it ends, and logs, the
	// least recently used ones it drops, so that ending every session of a
	// principal never misses one.
	Bound int
	// OnEnded, if not nil, is called once for each session the index ends:
	// reason "admin" (EndPrincipal), "max_per_principal" (Max) or
	// "index_bound" (Bound). For sessionproxy_sessions_ended_total.
	OnEnded func(reason string)
}

// DefaultIndexBound is how many sessions one principal's index holds at
// most when PrincipalOptions.Bound is 0: far more than one person uses, few
// enough that an index (about 70 bytes an entry) stays well under
// memcached's item size and a listing stays quick.
const DefaultIndexBound = 1000

// MaxPrincipalLen is the longest principal value (after section 13's
// decoding) that is indexed; a longer one is not a principal and is
// logged, never failing the request.
const MaxPrincipalLen = 1024

// Reasons a session ended, as OnEnded names them.
const (
	EndedAdmin           = "admin"
	EndedMaxPerPrincipal = "max_per_principal"
	EndedIndexBound      = "index_bound"
)

// principals is a Store's principal index; nil when it is off.
type principals struct {
	s     *Store
	attr  []byte
	max   int
	bound int
	ended func(reason string)

	mu      sync.Mutex              // protects pending
	pending map[string]pendingEntry // session ID → an entry the store could not take yet
}

// pendingEntry is an index entry to add again: while the shared store
// takes nothing, a session may still be kept in the hot tier and written
// back later, and its index entry must follow it, or a logout everywhere
// would miss it.
type pendingEntry struct {
	principal string
	created   int64
}

// maxPending bounds the entries waiting for the shared store; past it the
// oldest are given up (and logged).
const maxPending = 10000

func newPrincipals(s *Store, o PrincipalOptions) *principals {
	if o.Attr == "" {
		return nil
	}
	p := &principals{s: s, attr: []byte(o.Attr), max: o.Max, bound: o.Bound, ended: o.OnEnded, pending: map[string]pendingEntry{}}
	if p.bound <= 0 {
		p.bound = DefaultIndexBound
	}
	if p.max > 0 {
		p.bound = min(p.bound, max(p.max, 1))
	}
	s.wg.Add(1)
	go p.retryLoop()
	return p
}

// retryLoop adds again, every writeBackInterval, the entries the shared
// store could not take.
func (p *principals) retryLoop() {
	defer p.s.wg.Done()
	t := time.NewTicker(writeBackInterval)
	defer t.Stop()
	for {
		select {
		case <-p.s.closed:
			return
		case <-t.C:
		}
		p.mu.Lock()
		todo := maps.Clone(p.pending)
		p.mu.Unlock()
		for id, e := range todo {
			if err := p.add(e.principal, []byte(id), e.created); errors.Is(err, ErrUnavailable) {
				continue
			}
			p.mu.Lock()
			if p.pending[id] == e {
				delete(p.pending, id)
			}
			p.mu.Unlock()
		}
	}
}

// later queues an entry the shared store could not take.
func (p *principals) later(pr string, id []byte, created int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) >= maxPending {
		for old := range p.pending {
			delete(p.pending, old)
			p.s.logger().Error("principal index: too many entries waiting for the store; one given up", "session", LogID([]byte(old)))
			break
		}
	}
	p.pending[string(id)] = pendingEntry{principal: pr, created: created}
}

// pendingOf returns the waiting entries of principal pr, taking them out.
func (p *principals) pendingOf(pr string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id, e := range p.pending {
		if e.principal == pr {
			ids = append(ids, id)
			delete(p.pending, id)
		}
	}
	return ids
}

// ErrBadPrincipal means a principal value is empty, too long, or not
// text: it names no one and is not indexed.
var ErrBadPrincipal = errors.New("sessionstore: not a principal")

// DecodePrincipal returns the principal an attribute value names, after
// CONTRACT section 13's decoding: percent-decoded, then a JSON string's
// text (an adapter's `"ann"` is `ann`), any other JSON value's text as
// written, and a value that is not JSON as it is.
func DecodePrincipal(v []byte) (string, error) {
	d := percentDecode(v)
	if json.Valid(d) {
		var s string
		if json.Unmarshal(d, &s) == nil {
			d = []byte(s)
		}
	}
	if len(d) == 0 || len(d) > MaxPrincipalLen || !utf8.Valid(d) || bytes.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("%w: %d bytes", ErrBadPrincipal, len(d))
	}
	return string(d), nil
}

// percentDecode decodes %XX escapes; an invalid escape stays literal.
func percentDecode(v []byte) []byte {
	if bytes.IndexByte(v, '%') < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			var b [1]byte
			if _, err := hex.Decode(b[:], v[i+1:i+3]); err == nil {
				out = append(out, b[0])
				i += 2
				continue
			}
		}
		out = append(out, v[i])
	}
	return out
}

// indexID is the ID the index of principal p is kept under: a hash of it
// in the shape of a session ID, so that the shared stores (keys, hints,
// copies between nodes) take it as they take a session.
func indexID(p string) []byte {
	h := sha256.New()
	h.Write([]byte("sessionproxy principal index\x00"))
	h.Write([]byte(p))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.AppendEncode(nil, sum[:16])
}

// PrincipalSession is one session of a principal as the index and the
// session itself know it.
type PrincipalSession struct {
	ID         string // the whole ID; callers show LogID of it
	Created    int64  // unix ms
	LastAccess int64  // unix ms of the session's last write (writes refresh it at least every quarter of the ttl)
}

// indexEntry is one session in an index.
type indexEntry struct {
	id      string
	created int64 // unix ms
	access  int64 // unix ms: the session's last write as last seen (the index's own record, or its Touched)
}

// index is a decoded index value.
type index struct {
	version uint64
	expires int64
	entries []indexEntry
}

func decodeIndex(val []byte) (index, error) {
	var s Session
	if err := s.Decode(val); err != nil {
		return index{}, err
	}
	ix := index{version: s.Version, expires: s.Expires}
	for i := 0; i < s.Len(); i++ {
		n, v := s.Attr(i)
		id, err := hex.DecodeString(string(n))
		if err != nil || !ValidID(id) {
			continue
		}
		c, a, ok := bytes.Cut(v, []byte{'.'})
		if !ok {
			continue
		}
		created, _ := strconv.ParseInt(string(c), 10, 64)
		access, _ := strconv.ParseInt(string(a), 10, 64)
		ix.entries = append(ix.entries, indexEntry{id: string(id), created: created, access: access})
	}
	return ix, nil
}

// encode returns the stored form of ix at version, to be kept until
// expires.
func (ix *index) encode(version uint64, expires int64) []byte {
	s := Session{Deleted: true, Version: version, Touched: time.Now().Unix(), Expires: expires}
	slices.SortFunc(ix.entries, func(a, b indexEntry) int { return cmpStrings(a.id, b.id) })
	var name, val []byte
	for _, e := range ix.entries {
		name = hex.AppendEncode(name[:0], []byte(e.id))
		val = strconv.AppendInt(val[:0], e.created, 10)
		val = append(val, '.')
		val = strconv.AppendInt(val, e.access, 10)
		s.buf, s.attrs = appendSpan(s.buf, s.attrs, name, val)
	}
	// Hex names sort as the IDs' bytes do, so the spans are in order.
	return s.AppendEncode(nil)
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (ix *index) find(id string) int {
	for i, e := range ix.entries {
		if e.id == id {
			return i
		}
	}
	return -1
}

func (ix *index) remove(ids ...string) {
	ix.entries = slices.DeleteFunc(ix.entries, func(e indexEntry) bool { return slices.Contains(ids, e.id) })
}

// indexMerge is the Merger of one change of an index: remove the IDs in
// out, refresh the entries in refresh that are still there, add (or
// refresh) add, then, if the index holds more than limit, drop the least
// recently used entries (never add's) and say which in dropped.
type indexMerge struct {
	out     []string
	refresh []indexEntry
	add     indexEntry // none when add.id is ""
	limit   int
	expires int64
	dropped []indexEntry
	// full: before dropping entries, stop with errIndexFull so that the
	// caller can first find which are stale and when each was last used.
	full bool
}

// errIndexFull is indexMerge's answer, with full, to an index that the
// new entry would take over its limit.
var errIndexFull = errors.New("sessionstore: principal index full")

func (m *indexMerge) Merge(cur []byte) ([]byte, error) {
	var ix index
	if cur != nil {
		if d, err := decodeIndex(cur); err == nil {
			ix = d
		}
	}
	m.dropped = m.dropped[:0]
	ix.remove(m.out...)
	for _, e := range m.refresh {
		if i := ix.find(e.id); i >= 0 {
			ix.entries[i].access = max(ix.entries[i].access, e.access)
		}
	}
	if e := m.add; e.id != "" {
		if i := ix.find(e.id); i >= 0 {
			ix.entries[i].access = max(ix.entries[i].access, e.access)
		} else {
			ix.entries = append(ix.entries, e)
		}
	}
	if m.limit > 0 && len(ix.entries) > m.limit {
		if m.full {
			return nil, errIndexFull
		}
		// Least recently used first; among equals the oldest.
		slices.SortFunc(ix.entries, func(a, b indexEntry) int {
			if a.access != b.access {
				return int(a.access - b.access)
			}
			return int(a.created - b.created)
		})
		for i := 0; i < len(ix.entries) && len(ix.entries) > m.limit; {
			if ix.entries[i].id == m.add.id {
				i++
				continue
			}
			m.dropped = append(m.dropped, ix.entries[i])
			ix.entries = slices.Delete(ix.entries, i, i+1)
		}
	}
	return ix.encode(ix.version+1, max(ix.expires, m.expires)), nil
}

// indexExpires is how long an index written now is kept: past the
// expiry of any session written now (a session's write refreshes its
// index at least once a quarter of the ttl, see afterCommit), with room.
func (p *principals) indexExpires() int64 {
	return p.s.expires(time.Now().Unix()) + int64(p.s.opts.TTL/4/time.Second) + 1
}

// sessionExpires is when the session id, as this process last wrote it,
// may be dropped (0 if not known): a session with a lifetime of its own
// (a backend's X-Session-Max-Age) may outlast the ttl, and its index must
// not go first.
func (p *principals) sessionExpires(id []byte) int64 {
	if p.s.local == nil {
		return 0
	}
	var m ValueMeta
	p.s.local.GetFn(id, func(v []byte) error {
		m, _ = PeekMeta(v)
		return nil
	})
	return m.Expires + int64(p.s.opts.TTL/4/time.Second)
}

// indexStore is where indexes are kept: the shared store, or the hot tier
// of a Store that has no shared store (sessions then live in this process
// only, and so do their indexes).
type indexStore interface {
	Get(id []byte) ([]byte, error)
	Merge(id []byte, mg Merger) error
}

func (p *principals) where() indexStore {
	if p.s.Embedded() {
		return localIndex{p.s}
	}
	return p.s.shared
}

// localIndex keeps indexes in the hot tier, their writes serialised by
// the stripe of their ID like a session's.
type localIndex struct{ s *Store }

func (l localIndex) Get(id []byte) ([]byte, error) {
	v, err := l.s.local.Get(id)
	if err != nil {
		return nil, ErrNotFound
	}
	return v, nil
}

func (l localIndex) Merge(id []byte, mg Merger) error {
	mu := l.s.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	cur, _ := l.Get(id)
	val, err := mg.Merge(cur)
	if err != nil {
		return err
	}
	m, err := PeekMeta(val)
	if err != nil {
		return err
	}
	return l.s.local.Set(id, val, int(max(m.Expires-time.Now().Unix(), 1)))
}

// live reads session id from the store: its last write (unix ms, to the
// second), its creation (unix ms), and whether it is still a live session
// of principal pr. An error means the store could not tell.
func (p *principals) live(id, pr string) (access, created int64, ok bool, err error) {
	val, err := p.where().Get([]byte(id))
	if errors.Is(err, ErrNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	var sess Session
	if sess.Decode(val) != nil || sess.Deleted {
		return 0, 0, false, nil
	}
	if exp := sess.Expires; exp != 0 && exp < time.Now().Unix() {
		return 0, 0, false, nil
	}
	v, has := sess.Get(string(p.attr))
	if !has {
		return 0, 0, false, nil
	}
	if got, err := DecodePrincipal(v); err != nil || got != pr {
		return 0, 0, false, nil
	}
	return sess.Touched * 1000, sess.Created, true, nil
}

// add puts session id (created at created, unix ms) in pr's index,
// ending the least recently used others beyond Max or the bound. When the
// index is full it first prunes what is stale, so that only live sessions
// count against Max.
func (p *principals) add(pr string, id []byte, created int64) error {
	key := indexID(pr)
	now := time.Now().UnixMilli()
	m := &indexMerge{add: indexEntry{id: string(id), created: created, access: now}, limit: p.bound, expires: max(p.indexExpires(), p.sessionExpires(id)), full: true}
	if p.max > 0 {
		m.limit = p.max
	}
	err := p.where().Merge(key, m)
	if errors.Is(err, errIndexFull) {
		// Over the limit as recorded: find which entries are still
		// sessions of pr, and when each was last used, before choosing
		// which to end. Only then: a login costs no reads of the others.
		m.full = false
		if ix, rerr := p.read(pr); rerr == nil {
			for _, e := range ix.entries {
				if e.id == string(id) {
					continue
				}
				access, c, ok, lerr := p.live(e.id, pr)
				switch {
				case lerr != nil:
				case !ok:
					m.out = append(m.out, e.id)
				default:
					m.refresh = append(m.refresh, indexEntry{id: e.id, created: c, access: access})
				}
			}
		}
		err = p.where().Merge(key, m)
	}
	if err != nil {
		return err
	}
	reason := EndedIndexBound
	if p.max > 0 && m.limit == p.max {
		reason = EndedMaxPerPrincipal
	}
	for _, e := range m.dropped {
		if err := p.s.Delete([]byte(e.id)); err != nil {
			p.s.logger().Error("principal index: could not end a session it dropped", "principal_index", LogID(key), "session", LogID([]byte(e.id)), "error", err)
			continue
		}
		p.s.logger().Info("principal index: ended a session", "reason", reason, "principal_index", LogID(key), "session", LogID([]byte(e.id)), "limit", m.limit)
		p.end(reason)
	}
	return nil
}

// end counts one session the index ended in
// sessionproxy_sessions_ended_total (section 16 has no reason for the
// index's own bound: those count as max_per_principal, the limit it
// stands in for) and tells OnEnded.
func (p *principals) end(reason string) {
	if reason == EndedAdmin {
		CountEnded(EndAdmin)
	} else {
		CountEnded(EndMaxPerPrincipal)
	}
	if p.ended != nil {
		p.ended(reason)
	}
}

// remove takes ids out of pr's index.
func (p *principals) remove(pr string, ids ...string) error {
	m := &indexMerge{out: ids, expires: p.indexExpires()}
	return p.where().Merge(indexID(pr), m)
}

// Commit applies r.Change to the session (commit, lifecycle.go) and, with
// the principal index on, keeps the index in step: a session whose
// principal is set, changed or unset, that is rotated or invalidated, or
// whose refresh write is due, updates the indexes it is in. Index errors
// are logged: they never fail the request.
func (s *Store) Commit(r *Request) (CookieAction, []byte, error) {
	if s.principals == nil {
		return s.commit(r)
	}
	refresh := !r.New && s.needsRefresh(&r.Session)
	// commit clears Invalidate when it restarts the session.
	invalidate := r.Change.Invalidate
	act, id, err := s.commit(r)
	if err == nil {
		// r.Session.ID is still the ID the request came with, but for a
		// new session (which had no principal before).
		s.principals.afterCommit(r, r.Session.ID, act, id, refresh, invalidate)
	}
	return act, id, err
}

// change reports what u does to attribute name: the value it sets, or
// unset when it removes it.
func (u *Update) change(name []byte) (value []byte, set, unset bool) {
	for i := len(u.sets) - 1; i >= 0; i-- {
		if bytes.Equal(u.sets[i].name(u.buf), name) {
			return u.sets[i].value(u.buf), true, false
		}
	}
	for _, sp := range u.unsets {
		if bytes.Equal(sp.name(u.buf), name) {
			return nil, false, true
		}
	}
	return nil, false, false
}

// principalOf returns the principal sess names, if any.
func (p *principals) principalOf(sess *Session) (string, bool) {
	v, ok := sess.Get(string(p.attr))
	if !ok {
		return "", false
	}
	pr, err := DecodePrincipal(v)
	return pr, err == nil
}

func (p *principals) afterCommit(r *Request, oldID []byte, act CookieAction, id []byte, refresh, invalidate bool) {
	u := &r.Change
	if _, set, unset := u.change(p.attr); !set && !unset && !invalidate && !u.Rotate && !refresh && act == CookieKeep {
		return // the principal, and the ID, stay as they were
	}
	old, hadOld := "", false
	if !r.New {
		old, hadOld = p.principalOf(&r.Session)
	}
	if (invalidate && len(u.sets) == 0) || act == CookieExpire {
		if hadOld {
			p.logErr(p.remove(old, string(oldID)), oldID)
		}
		return
	}
	curID := oldID
	if act == CookieSet {
		curID = id // a new, rotated or restarted session
	}
	moved := !bytes.Equal(curID, oldID)
	pr, has := old, hadOld
	if r.New || invalidate {
		pr, has = "", false // a restarted session holds the sets alone
	}
	switch v, set, unset := u.change(p.attr); {
	case set:
		var err error
		if pr, err = DecodePrincipal(v); err != nil {
			has = false
			p.s.logger().Warn("principal index: the principal attribute's value names no one; the session is not indexed",
				"session", LogID(curID), "error", err)
		} else {
			has = true
		}
	case unset:
		has = false
	}
	if act == CookieKeep && !moved && u.Empty() && !refresh {
		return // nothing was written
	}
	if has && (pr != old || !hadOld || moved || refresh || act == CookieSet) {
		created := u.Created
		if created == 0 {
			created = r.Session.Created
		}
		// The new entry first: a failure between the two leaves a stale
		// entry (pruned on read), never a session the index misses.
		if err := p.add(pr, curID, created); errors.Is(err, ErrUnavailable) {
			p.later(pr, curID, created)
			p.s.logger().Warn("principal index: the store is unavailable; the entry is added when it returns", "session", LogID(curID))
		} else {
			p.logErr(err, curID)
		}
	}
	if hadOld && (!has || pr != old || moved) {
		p.logErr(p.remove(old, string(oldID)), oldID)
	}
}

func (p *principals) logErr(err error, id []byte) {
	if err != nil {
		p.s.logger().Error("principal index: update failed", "session", LogID(id), "error", err)
	}
}

// ErrNoPrincipals means the principal index is off (no
// PrincipalOptions.Attr).
var ErrNoPrincipals = errors.New("sessionstore: no principal index (session.principal is not set)")

// PrincipalSessions returns the live sessions of principal pr, most
// recently used first, and drops from its index what is no longer one
// (expired, invalidated, or now another principal's). A session the
// store cannot read just now is listed as the index knows it.
func (s *Store) PrincipalSessions(pr string) ([]PrincipalSession, error) {
	p := s.principals
	if p == nil {
		return nil, ErrNoPrincipals
	}
	ix, err := p.read(pr)
	if err != nil {
		return nil, err
	}
	var out []PrincipalSession
	var stale []string
	for _, e := range ix.entries {
		access, created, ok, err := p.live(e.id, pr)
		switch {
		case err != nil:
			out = append(out, PrincipalSession{ID: e.id, Created: e.created, LastAccess: e.access})
		case !ok:
			stale = append(stale, e.id)
		default:
			out = append(out, PrincipalSession{ID: e.id, Created: created, LastAccess: max(access, e.access)})
		}
	}
	if len(stale) > 0 {
		p.logErr(p.remove(pr, stale...), indexID(pr))
	}
	slices.SortFunc(out, func(a, b PrincipalSession) int { return int(b.LastAccess - a.LastAccess) })
	return out, nil
}

// read returns pr's index; an empty one when there is none.
func (p *principals) read(pr string) (index, error) {
	val, err := p.where().Get(indexID(pr))
	switch {
	case errors.Is(err, ErrNotFound):
		return index{}, nil
	case err != nil:
		return index{}, err
	}
	ix, err := decodeIndex(val)
	if err != nil {
		return index{}, nil // a damaged index holds nothing usable
	}
	return ix, nil
}

// EndPrincipal invalidates every session of principal pr (forced logout
// everywhere) and returns how many were live. Each goes as a logout does
// (a tombstone on every replica; other proxies' hot tiers drop it within
// the coherence bound). An unknown principal ends nothing. An error means
// some could not be ended; they stay in the index for another try.
func (s *Store) EndPrincipal(pr string) (int, error) {
	p := s.principals
	if p == nil {
		return 0, ErrNoPrincipals
	}
	ix, err := p.read(pr)
	if err != nil {
		return 0, err
	}
	var done []string
	var failed error
	n := 0
	// Entries this process could not add yet are its sessions too.
	for _, id := range p.pendingOf(pr) {
		if ix.find(id) < 0 {
			ix.entries = append(ix.entries, indexEntry{id: id})
		}
	}
	for _, e := range ix.entries {
		_, _, ok, lerr := p.live(e.id, pr)
		if lerr == nil && !ok {
			done = append(done, e.id) // stale: nothing to end
			continue
		}
		if err := s.Delete([]byte(e.id)); err != nil {
			failed = err
			continue
		}
		done = append(done, e.id)
		n++
		p.end(EndedAdmin)
	}
	if len(done) > 0 {
		p.logErr(p.remove(pr, done...), indexID(pr))
	}
	if n > 0 {
		s.logger().Info("ended every session of a principal", "principal_index", LogID(indexID(pr)), "sessions", n)
	}
	return n, failed
}
