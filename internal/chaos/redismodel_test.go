//go:build chaos

package chaos

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The Redis model is the memcached one (model_test.go: per-attribute
// last-write-wins, invalidation final, the tombstone rule, nothing older
// than what was read, within the staleness bound) with CONTRACT 11's one
// exception: replication is asynchronous, so a promotion of a replica may
// lose the last writes and invalidations its master acknowledged. Which
// ones: the replica holds a prefix of its master's stream, so the shard
// (one master and its replicas) may go back to any earlier state of its
// keys, but only at a promotion, recorded in the history as an operation
// of kind "promote" over the time the failover took. With wait_replicas
// (strict), a write acknowledged 200 was acknowledged by the replica too
// and survives: the shard may go back only to a state that no
// acknowledged change came after. A loss without a promotion between
// the write and the read that misses it is a violation either way.
//
// The state keeps every ID of the lineage on its own (a rotation writes
// the new ID and buries the old one, and on a Cluster the two may live on
// different shards, of which one may fail over and the other not).
type rstate struct {
	// keys: each ID of the lineage as the store holds it, "id:+attr=val"
	// (held; "id:+" without the partition's attribute) or "id:-" (not
	// held: invalidated, rotated away, or lost), space-separated, sorted.
	keys string
	// past: earlier values of keys a promotion may go back to, one per
	// line, "locks|keys"; locks are the shards (digits) whose keys may
	// no longer go back to it (strict: an acknowledged change came after).
	past string
}

func parseKeys(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		id, v, _ := strings.Cut(kv, ":")
		m[id] = v
	}
	return m
}

func formatKeys(m map[string]string) string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(id + ":" + m[id])
	}
	return b.String()
}

func held(keys map[string]string, id string) (string, bool) {
	v, ok := keys[id]
	if !ok || !strings.HasPrefix(v, "+") {
		return "", false
	}
	return v[1:], true
}

// redisModel returns the model for a Redis deployment of shards shards
// (master + replica: 1; Cluster: its masters); shardOf names an ID's
// shard. strict: the proxies run wait_replicas 1 and write sync.
func redisModel(strict bool, shards int, shardOf func(id string) int) porcupine.Model {
	// remember returns past with pre (the keys before a change) added,
	// and, strict and acknowledged, every entry locked for the shards
	// the change touched; entries locked for every shard are dropped.
	remember := func(past, pre string, acked bool, touched ...string) string {
		var lock []int
		if strict && acked {
			for _, id := range touched {
				if id != "" {
					lock = append(lock, shardOf(id))
				}
			}
		}
		var out []string
		for _, e := range append(strings.Split(past, "\n"), "|"+pre) {
			if e == "" {
				continue
			}
			locks, snap, _ := strings.Cut(e, "|")
			for _, sh := range lock {
				if d := strconv.Itoa(sh); !strings.Contains(locks, d) {
					locks += d
				}
			}
			if len(locks) >= shards {
				continue // no promotion can go back to it
			}
			e = locks + "|" + snap
			dup := false
			for _, o := range out {
				dup = dup || o == e
			}
			if !dup {
				out = append(out, e)
			}
		}
		return strings.Join(out, "\n")
	}
	step := func(st, in, out interface{}) []interface{} {
		s, o, r := st.(rstate), in.(op), out.(result)
		keys := parseKeys(s.keys)
		switch {
		case o.kind == "promote":
			next := []interface{}{s}
			shard := strconv.Itoa(o.shard)
			for _, e := range strings.Split(s.past, "\n") {
				locks, snap, ok := strings.Cut(e, "|")
				if !ok || strings.Contains(locks, shard) {
					continue
				}
				was := parseKeys(snap)
				nk := map[string]string{}
				for id, v := range keys {
					nk[id] = v
					if shardOf(id) == o.shard {
						nk[id] = "-"
						if w, ok := was[id]; ok {
							nk[id] = w
						}
					}
				}
				next = append(next, rstate{keys: formatKeys(nk), past: s.past})
			}
			return next
		case o.kind == "create":
			if s.keys != "" || r.unknown || r.newID == "" {
				return nil
			}
			v := "+"
			if o.only == "" || o.only == o.attr {
				v += o.attr + "=" + o.val
			}
			return []interface{}{rstate{keys: r.newID + ":" + v, past: remember(s.past, "", true, r.newID)}}
		case o.kind == "read" || o.part == "obs":
			if r.unknown {
				return []interface{}{s}
			}
			v, ok := held(keys, o.id)
			if r.found {
				if ok && v == r.attrs {
					return []interface{}{s}
				}
				return nil
			}
			// A fresh session: the ID is not held, and the proxy did not
			// follow a rotation to its successor (the tombstone rule).
			if _, succ := held(keys, r.seenID); ok || succ {
				return nil
			}
			return []interface{}{s}
		}
		// An effect (see step in model_test.go).
		cur, ok := held(keys, o.id)
		if (!r.unknown && !r.found) || !ok {
			return []interface{}{s}
		}
		acked := !r.unknown
		switch o.kind {
		case "write":
			if o.only == "" || o.only == o.attr {
				cur = o.attr + "=" + o.val
			}
			keys[o.id] = "+" + cur
		case "rotate":
			keys[o.id] = "-"
			if !r.unknown {
				if r.newID == "" || r.newID == o.id {
					return nil
				}
				keys[r.newID] = "+" + cur
			}
		case "invalidate":
			keys[o.id] = "-"
		}
		return []interface{}{rstate{keys: formatKeys(keys), past: remember(s.past, s.keys, acked, o.id, r.newID)}}
	}
	nm := porcupine.NondeterministicModel{
		// The memcached model's partitions, each with the promotions
		// that overlap its time (the others cannot change what it saw).
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			var proms, rest []porcupine.Operation
			for _, o := range h {
				if o.Input.(op).kind == "promote" {
					proms = append(proms, o)
				} else {
					rest = append(rest, o)
				}
			}
			parts := sessionModel.Partition(rest)
			for i, p := range parts {
				lo, hi := p[0].Call, p[0].Call
				for _, o := range p {
					lo = min(lo, o.Call)
					hi = max(hi, o.Call)
					if o.Output.(result).unknown {
						continue
					}
					hi = max(hi, o.Return)
				}
				first := p[0].Input.(op)
				for _, pr := range proms {
					if pr.Return >= lo && pr.Call <= hi {
						in := pr.Input.(op)
						in.lineage, in.only = first.lineage, first.only
						pr.Input = in
						parts[i] = append(parts[i], pr)
					}
				}
			}
			return parts
		},
		Init:  func() []interface{} { return []interface{}{rstate{}} },
		Step:  step,
		Equal: func(a, b interface{}) bool { return a.(rstate) == b.(rstate) },
		DescribeOperation: func(in, out interface{}) string {
			if o := in.(op); o.kind == "promote" {
				return fmt.Sprintf("promotion of a replica (shard %d)", o.shard)
			}
			return describe(in, out)
		},
		DescribeState: func(st interface{}) string {
			s := st.(rstate)
			return fmt.Sprintf("{%s} (%d earlier states a promotion may go back to)", s.keys, strings.Count(s.past, "|"))
		},
	}
	return nm.ToModel()
}
