package sessionstore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func sessionWith(kv ...string) *Session {
	var u Update
	for i := 0; i+1 < len(kv); i += 2 {
		u.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	var s Session
	u.applyTo(&s, &Session{})
	return &s
}

func attrString(s *Session) string {
	var parts []string
	for i := 0; i < s.Len(); i++ {
		n, v := s.Attr(i)
		parts = append(parts, string(n)+"="+string(v))
	}
	return strings.Join(parts, ",")
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	s := sessionWith("user", "bob", "cart", "", "bin", "\x00\xff\r\n")
	s.Created, s.Version, s.Touched = 1700000000123, 42, 1700000000
	enc := s.AppendEncode(nil)
	var d Session
	if err := d.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if d.Created != s.Created || d.Version != 42 || d.Touched != s.Touched || d.Deleted {
		t.Fatalf("decoded header %+v", d)
	}
	if got := attrString(&d); got != "bin=\x00\xff\r\n,cart=,user=bob" {
		t.Fatalf("attrs = %q", got)
	}
	if v, ok := d.Get("cart"); !ok || len(v) != 0 {
		t.Fatal("an empty value must still be a value")
	}
	if _, ok := d.Get("nope"); ok {
		t.Fatal("Get of a missing attribute")
	}
	v, del, err := peekVersion(enc)
	if err != nil || v != 42 || del {
		t.Fatalf("peekVersion = %d %v %v", v, del, err)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good := sessionWith("a", "1", "b", "2").AppendEncode(nil)
	for _, bad := range [][]byte{nil, {1}, {2, 0, 1}, good[:len(good)-1], append([]byte{9}, good[1:]...)} {
		var s Session
		if err := s.Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestUpdateApply(t *testing.T) {
	base := sessionWith("a", "1", "b", "2", "c", "3")
	base.Version = 7
	var u Update
	u.Set([]byte("B"), []byte("two"))
	u.Set([]byte("d"), []byte("4"))
	u.Set([]byte("d"), []byte("four")) // later wins
	u.Unset([]byte("c"))
	u.Unset([]byte("zz")) // unsetting a missing name is fine
	var out Session
	u.applyTo(&out, base)
	if got := attrString(&out); got != "a=1,b=two,d=four" {
		t.Fatalf("applied = %q", got)
	}
	if out.Version != 7 {
		t.Fatal("applyTo must not bump the version itself")
	}
}

func TestUpdateRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "has space", "semi;colon", "ünï", strings.Repeat("x", MaxNameLen+1), "a.b", "a\r\nb"} {
		var u Update
		if err := u.Set([]byte(name), []byte("v")); !errors.Is(err, ErrBadName) {
			t.Errorf("Set(%q) = %v, want ErrBadName", name, err)
		}
		if err := u.Unset([]byte(name)); !errors.Is(err, ErrBadName) {
			t.Errorf("Unset(%q) = %v, want ErrBadName", name, err)
		}
		if !u.Empty() {
			t.Errorf("a rejected name was recorded: %q", name)
		}
	}
	var u Update
	if err := u.Set([]byte("User_Name-2"), nil); err != nil {
		t.Fatal(err)
	}
	var out Session
	u.applyTo(&out, &Session{})
	if n, _ := out.Attr(0); string(n) != "user_name-2" {
		t.Fatalf("name stored as %q, want lower case", n)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := AppendNewID(nil)
		if !ValidID(id) {
			t.Fatalf("new ID %q is not valid", id)
		}
		if seen[string(id)] {
			t.Fatal("duplicate ID")
		}
		seen[string(id)] = true
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 21), strings.Repeat("a", 23),
		"aaaaaaaaaaaaaaaaaaaaa\n", "aaaaaaaaaa aaaaaaaaaaA", "aaaaaaaaaaaaaaaaaaaaa=", "aaaaaaaaaaaaaaaaaaaaa/",
		"aaaaaaaaaaaaaaaaaaaaab", // last char has non-zero padding bits
		"set x 0 0 1\r\nA\r\naaaa"} {
		if ValidID([]byte(bad)) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestPlacementIsConsistent(t *testing.T) {
	mk := func(n int) *Memcached {
		var nodes []Node
		for i := 0; i < n; i++ {
			nodes = append(nodes, Node{ID: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 1+i)})
		}
		return placementOnly(t, MemcachedOptions{Nodes: nodes, Replicas: 2})
	}
	s4, s5 := mk(4), mk(5)
	const keys = 10000
	moved, primaries := 0, map[string]int{}
	for i := 0; i < keys; i++ {
		id := AppendNewID(nil)
		var p4, p5 placement
		r4, r5 := s4.replicas(id, &p4), s5.replicas(id, &p5)
		if len(r4) != 2 || r4[0] == r4[1] {
			t.Fatal("replicas not on two distinct nodes")
		}
		primaries[r4[0].ID]++
		if r4[0].ID != r5[0].ID {
			moved++
			if r5[0].ID != "n4" {
				t.Fatalf("a key moved between old nodes %s -> %s", r4[0].ID, r5[0].ID)
			}
		}
	}
	// Adding a fifth node moves about 1/5 of the primaries.
	if moved < keys/5-keys/25 || moved > keys/5+keys/25 {
		t.Fatalf("adding a node moved %d of %d primaries, want about %d", moved, keys, keys/5)
	}
	for id, n := range primaries {
		if n < keys/4-keys/20 || n > keys/4+keys/20 {
			t.Errorf("node %s is primary for %d of %d keys", id, n, keys)
		}
	}
}

func TestPlacementFailoverOnlyWhenRegularMissing(t *testing.T) {
	s := placementOnly(t, MemcachedOptions{Replicas: 1, Nodes: []Node{
		{ID: "n1", Addr: "127.0.0.1:1"}, {ID: "n2", Addr: "127.0.0.1:2", Failover: true}}})
	for i := 0; i < 100; i++ {
		var p placement
		if r := s.replicas(AppendNewID(nil), &p); r[0].ID != "n1" {
			t.Fatalf("failover node used while n1 is up")
		}
	}
	s.nodes[0].state.Store(int32(StateDown))
	var p placement
	if r := s.replicas(AppendNewID(nil), &p); len(r) != 1 || r[0].ID != "n2" {
		t.Fatalf("failover node not used with n1 down: %v", r)
	}
}

func BenchmarkDecode(b *testing.B) {
	enc := sessionWith("user", "bob", "cart", strings.Repeat("x", 200), "visits", "12").AppendEncode(nil)
	var s Session
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Decode(enc)
	}
}

func BenchmarkApplyEncode(b *testing.B) {
	base := sessionWith("user", "bob", "cart", strings.Repeat("x", 200), "visits", "12")
	var u Update
	u.Set([]byte("visits"), []byte("13"))
	var out Session
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		u.applyTo(&out, base)
		buf = out.AppendEncode(buf[:0])
	}
	_ = bytes.MinRead
}

// placementOnly is a store over nodes that do not exist, for placement
// alone: its monitors are stopped and every node is taken as up.
func placementOnly(t *testing.T, o MemcachedOptions) *Memcached {
	t.Helper()
	s, err := NewMemcached(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, n := range s.nodes {
		n.state.Store(int32(StateUp))
	}
	return s
}

func TestUpdateRotateTo(t *testing.T) {
	good := AppendNewID(nil)
	var u Update
	if err := u.RotateTo(good); err != nil || !u.Rotate || string(u.rotateTo) != string(good) {
		t.Fatalf("RotateTo(%s) = %v, Rotate %v, rotateTo %q", good, err, u.Rotate, u.rotateTo)
	}
	u.Reset()
	if u.Rotate || len(u.rotateTo) != 0 {
		t.Fatal("Reset kept the rotation")
	}
	for _, id := range []string{"", "1", "abc", string(good) + "A", string(good[:IDLen-1]) + "B", string(good[:IDLen-1]) + "."} {
		var u Update
		if err := u.RotateTo([]byte(id)); !errors.Is(err, ErrBadID) || u.Rotate || len(u.rotateTo) != 0 {
			t.Errorf("RotateTo(%q) = %v, Rotate %v: want ErrBadID and nothing recorded", id, err, u.Rotate)
		}
	}
}
