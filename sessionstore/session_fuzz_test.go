package sessionstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
)

// The codec reads whatever memcached hands back, which a misbehaving
// client, another application under the same key prefix or a bit flip may
// have written. These fuzz targets check that decoding anything is safe and
// that what encodes, decodes to the same session.

// encodeSeed builds a stored value by hand, so that seeds can hold what the
// encoder never writes (bad names, duplicates, wrong order, lying lengths).
func encodeSeed(flags byte, version uint64, created, touched int64, kv ...string) []byte {
	b := []byte{formatV1, flags}
	b = binary.AppendUvarint(b, version)
	b = binary.AppendVarint(b, created)
	b = binary.AppendVarint(b, touched)
	b = binary.AppendUvarint(b, uint64(len(kv)/2))
	for _, s := range kv {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// sameSession reports whether two sessions hold the same data, attributes
// in the same order.
func sameSession(a, b *Session) bool {
	if a.Created != b.Created || a.Version != b.Version || a.Touched != b.Touched ||
		a.Deleted != b.Deleted || a.TTL != b.TTL || a.Len() != b.Len() {
		return false
	}
	for i := 0; i < a.Len(); i++ {
		an, av := a.Attr(i)
		bn, bv := b.Attr(i)
		if !bytes.Equal(an, bn) || !bytes.Equal(av, bv) {
			return false
		}
	}
	return true
}

// checkAttrSlices checks that the slices Attr returns are capped: a caller
// appending to one must not overwrite the next attribute in the buffer.
func checkAttrSlices(t *testing.T, s *Session) {
	t.Helper()
	for i := 0; i < s.Len(); i++ {
		n, v := s.Attr(i)
		if cap(n) != len(n) || cap(v) != len(v) {
			t.Fatalf("Attr(%d) returns uncapped slices: name %d/%d, value %d/%d", i, len(n), cap(n), len(v), cap(v))
		}
	}
}

func FuzzDecode(f *testing.F) {
	valid := sessionWith("user", "bob", "cart", "", "bin", "\x00\xff\r\n")
	valid.Created, valid.Version, valid.Touched = 1700000000123, 42, 1700000000
	tomb := &Session{Deleted: true, Version: math.MaxUint64, Created: -1, Touched: math.MinInt64}
	big := sessionWith("big", strings.Repeat("x", 16<<10+1)) // a 3-byte length
	withTTL := sessionWith("user", "ann")
	withTTL.TTL = MaxTTL
	for _, seed := range [][]byte{
		valid.AppendEncode(nil),
		tomb.AppendEncode(nil),
		big.AppendEncode(nil),
		(&Session{}).AppendEncode(nil),
		nil,
		{formatV1},
		{formatV1, 0},
		{formatV1, 0xff, 0, 0, 0, 0}, // every flag bit set
		{2, 0, 1, 0, 0, 0},           // a future format
		valid.AppendEncode(nil)[:10], // truncated
		append(valid.AppendEncode(nil), "junk"...),                                                       // trailing bytes
		{formatV1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},                  // varint overflow
		{formatV1, 0, 0x80, 0x00, 0, 0, 0},                                                               // overlong but valid uvarint
		{formatV1, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},                                             // count far beyond the data
		append(encodeSeed(0, 1, 0, 0)[:5], 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 'a'), // name length 2^63
		encodeSeed(0, 1, 0, 0, "", "empty name"),
		encodeSeed(0, 1, 0, 0, "a\r\nx-evil: 1", "v"),               // a name no backend could set
		encodeSeed(0, 1, 0, 0, "b", "1", "a", "2"),                  // out of order
		encodeSeed(0, 1, 0, 0, "a", "1", "a", "2"),                  // duplicate
		encodeSeed(flagDeleted, 9, 5, 5, "user", "bob"),             // a tombstone with data
		withTTL.AppendEncode(nil),                                   // remember me: the ttl after the attributes
		append(encodeSeed(flagTTL, 1, 0, 0, "a", "1"), 0),           // a ttl of 0 is never written
		append(encodeSeed(flagTTL, 1, 0, 0, "a", "1"), 1),           // a negative ttl
		binary.AppendVarint(encodeSeed(flagTTL, 1, 0, 0), MaxTTL+1), // over MaxTTL
		encodeSeed(flagTTL, 1, 0, 0, "a", "1"),                      // the flag without the ttl
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		s := Session{ID: []byte("kept")}
		err := s.Decode(in)
		if string(s.ID) != "kept" {
			t.Fatalf("Decode changed the ID to %q", s.ID)
		}
		pv, pdel, perr := peekVersion(data)

		// The same bytes into a Session that held another one: nothing of
		// the old session may survive, whatever the outcome.
		reused := sessionWith("old", "value", "zzz", "left over")
		reused.Version, reused.Deleted = 99, true
		rerr := reused.Decode(data)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Decode into a fresh session: %v, into a reused one: %v", err, rerr)
		}

		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v is not ErrCorrupt", err)
			}
			if s.Len() != 0 || reused.Len() != 0 {
				t.Fatalf("a failed Decode left %d (reused: %d) attributes", s.Len(), reused.Len())
			}
			return
		}
		if !sameSession(&s, reused) {
			t.Fatal("Decode into a reused session differs from a fresh one")
		}
		if perr != nil || pv != s.Version || pdel != s.Deleted {
			t.Fatalf("peekVersion = %d %v %v, Decode = %d %v", pv, pdel, perr, s.Version, s.Deleted)
		}
		checkAttrSlices(t, &s)

		// Decode copies: scribbling over its input changes nothing.
		for i := range in {
			in[i] ^= 0xff
		}
		if !sameSession(&s, reused) {
			t.Fatal("the decoded session shares memory with Decode's input")
		}

		enc := s.AppendEncode(nil)
		var again Session
		if err := again.Decode(enc); err != nil {
			t.Fatalf("re-encoded session does not decode: %v", err)
		}
		if !sameSession(&s, &again) {
			t.Fatal("encode then decode changed the session")
		}
		if enc2 := again.AppendEncode(nil); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not stable across a round trip")
		}
		if v, del, err := peekVersion(enc); err != nil || v != s.Version || del != s.Deleted {
			t.Fatalf("peekVersion of the re-encoding = %d %v %v, want %d %v", v, del, err, s.Version, s.Deleted)
		}
		// AppendEncode appends: a prefix stays as it was.
		if withPrefix := s.AppendEncode([]byte("prefix")); !bytes.Equal(withPrefix, append([]byte("prefix"), enc...)) {
			t.Fatal("AppendEncode does not append")
		}
	})
}

// nameRE is the contract's attribute name, written
// independently of ValidName.
var nameRE = regexp.MustCompile(`^[a-z0-9_-]{1,200}$`)

// asciiLower lower-cases A-Z only, as HTTP header names are compared: a
// Unicode-aware ToLower would turn the Kelvin sign into a valid "k".
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// op is one instruction of a fuzzed backend response.
type op struct {
	unset       bool
	name, value string
}

// parseOps reads sets as "name=value" lines and unsets as a
// comma-separated list, the shapes of X-Session-Set-<name>: <value> and
// X-Session-Unset: <name>, <name>.
func parseOps(sets, unsets string) []op {
	var ops []op
	if sets != "" {
		for _, line := range strings.Split(sets, "\n") {
			n, v, _ := strings.Cut(line, "=")
			ops = append(ops, op{name: n, value: v})
		}
	}
	if unsets != "" {
		for _, n := range strings.Split(unsets, ",") {
			ops = append(ops, op{unset: true, name: n})
		}
	}
	return ops
}

// record feeds ops to u, checking each name against the contract, and
// applies the accepted ones to model as applyTo must: unsets first, then
// sets in order. It returns how many ops were accepted.
func record(t *testing.T, u *Update, ops []op, model map[string]string) (accepted int) {
	t.Helper()
	var sets []op
	for _, o := range ops {
		var err error
		if o.unset {
			err = u.Unset([]byte(o.name))
		} else {
			err = u.Set([]byte(o.name), []byte(o.value))
		}
		lower := asciiLower(o.name)
		if valid := nameRE.MatchString(lower); valid != (err == nil) {
			t.Fatalf("name %q: valid %v, but Set/Unset returned %v", o.name, valid, err)
		}
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("name %q: error %v is not ErrBadName", o.name, err)
			}
			continue
		}
		accepted++
		if o.unset {
			delete(model, lower)
		} else {
			sets = append(sets, op{name: lower, value: o.value})
		}
	}
	for _, o := range sets {
		model[o.name] = o.value
	}
	return accepted
}

func FuzzUpdateRoundTrip(f *testing.F) {
	f.Add("user=bob\ncart=", "visits=1\nUser=alice", "cart", uint64(3), int64(1700000000123))
	f.Add("", "Counter=1", "", uint64(0), int64(0))
	f.Add("a=1\nb=2\nc=3", "b=two\nd=4\nd=four", "c,zz", uint64(7), int64(-1))
	f.Add("user=bob", "user=carol", "user", uint64(math.MaxUint64), int64(math.MaxInt64)) // set and unset: set wins
	f.Add("x=1", "", "X,x", uint64(1), int64(1))
	f.Add("", "has space=1\nsemi;colon=2\na.b=3\n=4\nok=5", "a\r\nb, c", uint64(1), int64(1))
	f.Add("", "\u212a=kelvin\n\u017f=long s\nünï=x\nİ=dotted", "\u212a", uint64(1), int64(1)) // lower-case to ASCII only under Unicode rules
	f.Add("", strings.Repeat("n", 200)+"=max\n"+strings.Repeat("n", 201)+"=over", "", uint64(1), int64(1))
	f.Add("", strings.Repeat("n", 64)+"=old-max\n"+strings.Repeat("n", 65)+"=was-over", "", uint64(1), int64(1))
	// Names as the adapters write them (CONTRACT.md section 13).
	f.Add("pojun-2etech=%22x%22", "user-49d=3\nuser_49D=4\n"+strings.Repeat("-2e", 66)+"x=200", "pojun-2Etech", uint64(1), int64(1))
	f.Add("", "X-Session-Attr-User=spoof\nuser_name-2=ok\nA_B-C=ok", "", uint64(1), int64(1))
	f.Add("bin=\x00\xff\r", "big="+strings.Repeat("v", 4096)+"\nempty=", "bin", uint64(2), int64(2))
	f.Fuzz(func(t *testing.T, baseSets, sets, unsets string, version uint64, created int64) {
		// The base session, built the way the store builds every session.
		var bu Update
		baseModel := map[string]string{}
		record(t, &bu, parseOps(baseSets, ""), baseModel)
		var base Session
		bu.applyTo(&base, &Session{})
		base.ID = []byte("base-id")
		base.Version, base.Created, base.Touched = version, created, created/1000
		baseEnc := base.AppendEncode(nil)

		var u Update
		model := map[string]string{}
		for k, v := range baseModel {
			model[k] = v
		}
		ops := parseOps(sets, unsets)
		if accepted := record(t, &u, ops, model); u.Empty() != (accepted == 0) {
			t.Fatalf("Empty() = %v after %d accepted instructions", u.Empty(), accepted)
		}
		var got Session
		u.applyTo(&got, &base)

		if !bytes.Equal(base.AppendEncode(nil), baseEnc) {
			t.Fatal("applyTo changed its base")
		}
		if string(got.ID) != "base-id" || got.Version != base.Version || got.Created != base.Created ||
			got.Touched != base.Touched || got.Deleted {
			t.Fatalf("applyTo header = %q %d %d %d %v, want the base's", got.ID, got.Version, got.Created, got.Touched, got.Deleted)
		}
		if got.Len() != len(model) {
			t.Fatalf("%d attributes, want %d", got.Len(), len(model))
		}
		var prev []byte
		for i := 0; i < got.Len(); i++ {
			n, v := got.Attr(i)
			if !nameRE.Match(n) {
				t.Fatalf("stored name %q is not a valid lower-case name", n)
			}
			if prev != nil && bytes.Compare(prev, n) >= 0 {
				t.Fatalf("names out of order or repeated: %q then %q", prev, n)
			}
			prev = n
			if want, ok := model[string(n)]; !ok || want != string(v) {
				t.Fatalf("attribute %q = %q, want %q (present %v)", n, v, want, ok)
			}
			if gv, ok := got.Get(string(n)); !ok || !bytes.Equal(gv, v) {
				t.Fatalf("Get(%q) = %q %v, want %q", n, gv, ok, v)
			}
		}
		checkAttrSlices(t, &got)

		// Stored and read back, it is the same session.
		enc := got.AppendEncode(nil)
		var dec Session
		if err := dec.Decode(enc); err != nil {
			t.Fatalf("Decode of an encoded update: %v", err)
		}
		if !sameSession(&got, &dec) {
			t.Fatal("encode then decode changed the session")
		}
		if v, del, err := peekVersion(enc); err != nil || v != version || del {
			t.Fatalf("peekVersion = %d %v %v, want %d false", v, del, err, version)
		}

		// Pooled Updates and Sessions are reused: Reset, the same ops and
		// a destination that held another session give the same result.
		u.Reset()
		if !u.Empty() {
			t.Fatal("Update not empty after Reset")
		}
		record(t, &u, ops, map[string]string{})
		reused := sessionWith("stale", "data")
		u.applyTo(reused, &base)
		if !sameSession(&got, reused) || string(reused.ID) != "base-id" {
			t.Fatal("a reused Update and Session give a different result")
		}
	})
}
