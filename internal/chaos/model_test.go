//go:build chaos

package chaos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// An op is one client request on one session lineage: the chain of IDs a
// client holds from the session's creation through its rotations until
// it is invalidated (or the client loses track of it).
type op struct {
	lineage int
	kind    string // create read write rotate invalidate; promote (Redis, redismodel_test.go)
	shard   int    // promote: the Redis shard (master and its replicas) failed over
	id      string // the cookie sent ("" for create)
	attr    string // write: the attribute set
	val     string // write: its value (unique in a run)
	proxy   int
	// part splits a request that changes the session in two operations:
	// "obs", what the backend was shown (a read, which may be as stale as
	// a read), and "eff", its effect on the store, which happens while
	// the request runs. A proxy whose hot tier is up to a second behind
	// shows the backend an older session, but must not store one.
	part string
	// only is the attribute a partition of the history is about (set
	// by the Partition function): the contract's last-write-wins is per
	// attribute, and a proxy's view merges its own writes with others'
	// up to a second old, so a view need not be one snapshot of the whole
	// session; each attribute on its own must be one of the register's
	// states within the staleness bound.
	only string
}

// A result is what the client saw. unknown: the request failed (503,
// another error status, a timeout, a reset): it may or may not have taken
// effect, and porcupine may place it anywhere after its start.
type result struct {
	unknown bool
	status  int
	found   bool   // the backend saw the cookie's session (same ID, not X-Session-New)
	seenID  string // X-Session-Id the backend got
	attrs   string // the attributes the backend got, canonical
	newID   string // create, rotate: the ID of the Set-Cookie
}

// state is one lineage as the contract says it must look: its current ID,
// attributes (canonical "k=v;k=v") and the IDs that must never be
// readable again (rotated away or invalidated), ";"-joined. Plain strings
// so that == compares states.
type state struct {
	cur, attrs, dead string
}

func canon(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}

func parseCanon(s string) map[string]string {
	m := map[string]string{}
	if s == "" {
		return m
	}
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func setAttr(attrs, k, v string) string {
	m := parseCanon(attrs)
	m[k] = v
	return canon(m)
}

func isDead(s state, id string) bool {
	for _, d := range strings.Split(s.dead, ";") {
		if d != "" && d == id {
			return true
		}
	}
	return false
}

func kill(s state) state {
	if s.cur != "" && s.cur != "?" {
		if s.dead != "" {
			s.dead += ";"
		}
		s.dead += s.cur
	}
	return s
}

// step is the contract's sequential specification of one lineage:
//   - section 3: a read through any proxy sees every attribute as last
//     written (one writer per lineage: last-write-wins per attribute is
//     the order of the writes), and a stored session is never lost while at
//     most one of its replicas is faulty (the nemesis never faults two
//     nodes at once and waits for catching up to end);
//   - section 3/12 "never an older version": a read may not go back to a
//     version older than one already read (porcupine's real-time order,
//     loosened only by the staleness bound, see stale in chaos_test.go);
//   - section 8: an invalidated ID is never readable again; a rotated-away
//     ID neither (a request that arrives after the rotation gets a fresh
//     session, never the rotated one: the tombstone rule);
//   - rotation keeps the data under the new ID.
func step(st interface{}, in interface{}, out interface{}) (bool, interface{}) {
	s, o, r := st.(state), in.(op), out.(result)
	if o.kind == "create" {
		if s != (state{}) || r.unknown {
			return false, s
		}
		st := state{cur: r.newID}
		if o.only == "" || o.only == o.attr {
			st.attrs = o.attr + "=" + o.val
		}
		return true, st
	}
	if o.kind == "read" || o.part == "obs" {
		if r.unknown {
			return true, s
		}
		if isDead(s, o.id) {
			// Never the session again, nor (tombstone rule) its successor.
			return !r.found && r.seenID != s.cur, s
		}
		if o.id != s.cur || s.cur == "" || s.cur == "?" {
			return false, s
		}
		return r.found && r.attrs == s.attrs, s
	}
	// An effect. One of a request that failed may have happened (here)
	// or not (porcupine orders it after everything else); one whose
	// request got a fresh session, or that porcupine orders after the ID
	// died, changes nothing of this lineage (reads of the dead ID check
	// that it was not brought back).
	if (!r.unknown && !r.found) || o.id != s.cur || s.cur == "" || s.cur == "?" {
		return true, s
	}
	switch o.kind {
	case "write":
		s.attrs = setAttr(s.attrs, o.attr, o.val)
	case "rotate":
		s = kill(s)
		s.cur = "?"
		if !r.unknown {
			if r.newID == "" || r.newID == o.id {
				return false, s
			}
			s.cur = r.newID
		}
	case "invalidate":
		s = kill(s)
		s.cur = ""
	}
	return true, s
}

func short(id string) string {
	if len(id) > 6 {
		return id[:6]
	}
	return id
}

func describe(in, out interface{}) string {
	o, r := in.(op), out.(result)
	var b strings.Builder
	if o.only != "" {
		fmt.Fprintf(&b, "[%s] ", o.only)
	}
	fmt.Fprintf(&b, "p%d %s%s(%s", o.proxy, o.kind, map[string]string{"": "", "obs": ".seen", "eff": ".effect"}[o.part], short(o.id))
	if o.kind == "write" || o.kind == "create" {
		fmt.Fprintf(&b, " %s=%s", o.attr, o.val)
	}
	b.WriteString(") -> ")
	if r.unknown {
		fmt.Fprintf(&b, "unknown(%d)", r.status)
		return b.String()
	}
	if r.found {
		fmt.Fprintf(&b, "found {%s}", r.attrs)
	} else {
		fmt.Fprintf(&b, "fresh %s", short(r.seenID))
	}
	if r.newID != "" {
		fmt.Fprintf(&b, " new=%s", short(r.newID))
	}
	return b.String()
}

// attrNames are the attributes clients write.
var attrNames = []string{"a", "b", "c"}

func project(attrs, only string) string {
	v, ok := parseCanon(attrs)[only]
	if !ok {
		return ""
	}
	return only + "=" + v
}

var sessionModel = porcupine.Model{
	// One partition per lineage and attribute: creation, rotation,
	// invalidation and every observation are in each of the lineage's
	// partitions (the observation cut down to the one attribute), a
	// write's effect only in its attribute's.
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		type key struct {
			lineage int
			attr    string
		}
		by := map[key][]porcupine.Operation{}
		var keys []key
		for _, o := range h {
			in := o.Input.(op)
			for _, a := range attrNames {
				if in.kind == "write" && in.part == "eff" && in.attr != a {
					continue
				}
				k := key{in.lineage, a}
				if _, ok := by[k]; !ok {
					keys = append(keys, k)
				}
				c := o
				in.only = a
				c.Input = in
				res := o.Output.(result)
				res.attrs = project(res.attrs, a)
				c.Output = res
				by[k] = append(by[k], c)
			}
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init:              func() interface{} { return state{} },
	Step:              step,
	Equal:             func(a, b interface{}) bool { return a.(state) == b.(state) },
	DescribeOperation: describe,
	DescribeState: func(st interface{}) string {
		s := st.(state)
		return fmt.Sprintf("cur=%s {%s} dead=%d", short(s.cur), s.attrs, strings.Count(s.dead, ";")+map[bool]int{true: 0, false: 1}[s.dead == ""])
	},
}
