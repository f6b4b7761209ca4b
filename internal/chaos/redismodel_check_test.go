//go:build chaos

package chaos

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestRedisModel checks the checker: histories whose only fault is a lost
// change, with and without a promotion between the change and the read
// that misses it, against the lossy model (wait_replicas 0) and the
// strict one (wait_replicas 1). A model that accepted a loss without a
// promotion, or an acknowledged loss under wait_replicas, would let the
// harness pass over the bug it is there to find.
func TestRedisModel(t *testing.T) {
	// Times in ms; one client, lineage 1; IDs X (shard 0) and Y (shard 1).
	shardOf := func(id string) int {
		if id == "Y" {
			return 1
		}
		return 0
	}
	type o struct {
		call, ret int64 // ret < 0: unknown (infinite)
		in        op
		out       result
	}
	create := o{0, 10, op{lineage: 1, kind: "create", attr: "a", val: "v1"}, result{newID: "X", seenID: "X"}}
	// write sets a=val on id, shown a=v1.
	write := func(call int64, id, val string, acked bool) []o {
		res := result{found: true, seenID: id, attrs: "a=v1"}
		ret := call + 5
		if !acked {
			res = result{unknown: true, status: 503}
			ret = -1
		}
		in := op{lineage: 1, kind: "write", id: id, attr: "a", val: val}
		obs, eff := in, in
		obs.part, eff.part = "obs", "eff"
		out := []o{{call, ret, eff, res}}
		if acked {
			out = append(out, o{call, ret, obs, res})
		}
		return out
	}
	read := func(call int64, id, attrs string, found bool) o {
		r := result{found: found, seenID: id, attrs: attrs}
		if !found {
			r.seenID = "fresh" + id
		}
		return o{call, call + 5, op{lineage: 1, kind: "read", id: id}, r}
	}
	change := func(call int64, kind, id, newID string) []o {
		in := op{lineage: 1, kind: kind, id: id}
		res := result{found: true, seenID: id, attrs: "a=v1", newID: newID}
		obs, eff := in, in
		obs.part, eff.part = "obs", "eff"
		return []o{{call, call + 5, obs, res}, {call, call + 5, eff, res}}
	}
	promote := func(call, ret int64, shard int) o {
		return o{call, ret, op{kind: "promote", shard: shard}, result{}}
	}
	cat := func(parts ...interface{}) []o {
		var h []o
		for _, p := range parts {
			switch p := p.(type) {
			case o:
				h = append(h, p)
			case []o:
				h = append(h, p...)
			}
		}
		return h
	}
	cases := []struct {
		name          string
		h             []o
		lossy, strict bool // linearizable against each
	}{
		{"no fault", cat(create, write(20, "X", "v2", true), read(40, "X", "a=v2", true)), true, true},
		{"acknowledged write lost, no promotion", cat(create, write(20, "X", "v2", true), read(40, "X", "a=v1", true)), false, false},
		{"acknowledged write lost across a promotion", cat(create, write(20, "X", "v2", true), promote(32, 35, 0), read(40, "X", "a=v1", true)), true, false},
		{"promotion before the write", cat(create, promote(12, 15, 0), write(20, "X", "v2", true), read(40, "X", "a=v1", true)), false, false},
		{"promotion of another shard", cat(create, write(20, "X", "v2", true), promote(32, 35, 1), read(40, "X", "a=v1", true)), false, false},
		{"session lost across a promotion", cat(create, promote(32, 35, 0), read(40, "X", "", false)), true, false},
		{"unacknowledged write seen, then lost across a promotion", cat(create, write(20, "X", "v2", false), read(30, "X", "a=v2", true), promote(32, 35, 0), read(40, "X", "a=v1", true)), true, true},
		{"unacknowledged write seen, then lost, no promotion", cat(create, write(20, "X", "v2", false), read(30, "X", "a=v2", true), read(40, "X", "a=v1", true)), false, false},
		{"invalidation undone, no promotion", cat(create, change(20, "invalidate", "X", ""), read(40, "X", "a=v1", true)), false, false},
		{"invalidation undone across a promotion", cat(create, change(20, "invalidate", "X", ""), promote(32, 35, 0), read(40, "X", "a=v1", true)), true, false},
		// A rotation X -> Y whose new key's shard fails over: Y is
		// gone, X stays buried (its shard kept the tombstone).
		{"rotation's new ID lost on its shard only", cat(create, change(20, "rotate", "X", "Y"), promote(32, 35, 1), read(40, "Y", "", false), read(60, "X", "", false)), true, false},
		{"rotated ID readable again, no promotion", cat(create, change(20, "rotate", "X", "Y"), read(40, "X", "a=v1", true)), false, false},
	}
	for _, c := range cases {
		var h []porcupine.Operation
		for _, x := range c.h {
			ret := x.ret
			if ret < 0 {
				ret = math.MaxInt64
			}
			h = append(h, porcupine.Operation{ClientId: 0, Input: x.in, Call: x.call, Output: x.out, Return: ret})
		}
		for _, strict := range []bool{false, true} {
			want := c.lossy
			if strict {
				want = c.strict
			}
			got := porcupine.CheckOperations(redisModel(strict, 2, shardOf), h)
			if got != want {
				t.Errorf("%s (strict %v): linearizable %v, want %v", c.name, strict, got, want)
			}
		}
	}
}
