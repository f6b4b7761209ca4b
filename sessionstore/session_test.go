package sessionstore

import (
	"bytes"
	"errors"
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
