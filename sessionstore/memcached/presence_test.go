package memcached

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

var rosterTests = []struct {
	in   string
	want []string // nil with bad
	bad  bool
}{
	{"", nil, false},
	{"a", []string{"a"}, false},
	{"0123abcd x_y-Z", []string{"0123abcd", "x_y-Z"}, false},
	{"a a", nil, true},
	{"a  b", nil, true},
	{" a", nil, true},
	{"a\r\nb", nil, true},
	{"a:b", nil, true},
	{strings.Repeat("x", 65), nil, true},
}

func TestParseRoster(t *testing.T) {
	for _, tc := range rosterTests {
		got, err := parseRoster([]byte(tc.in))
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("parseRoster(%q) = %q, %v", tc.in, got, err)
		}
	}
	var many []string
	for i := 0; i <= maxRoster; i++ {
		many = append(many, sessionstore.NewInstanceID())
	}
	if _, err := parseRoster(appendRoster(nil, many)); err == nil {
		t.Errorf("a roster of %d instances parsed", len(many))
	}
}

// FuzzRoster: a roster read from a node (anything another process, or a
// stray client, left there) parses to valid, distinct IDs that write back
// to the same bytes, or is refused whole.
func FuzzRoster(f *testing.F) {
	for _, tc := range rosterTests {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte("0123456789abcdef fedcba9876543210"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parseRoster(b)
		if err != nil {
			return
		}
		if len(ids) > maxRoster {
			t.Fatalf("%d ids", len(ids))
		}
		for i, id := range ids {
			if !sessionstore.ValidInstanceID(id) || slices.Contains(ids[:i], id) {
				t.Fatalf("%q: bad or repeated id %q", b, id)
			}
		}
		if back := appendRoster(nil, ids); !bytes.Equal(back, b) {
			t.Fatalf("%q parsed to %q, written back as %q", b, ids, back)
		}
	})
}

func TestParseMark(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1000": time.Second, "100": 100 * time.Millisecond, "10000": 10 * time.Second,
		"10001": sessionstore.DefaultProbeInterval, "0": sessionstore.DefaultProbeInterval, "": sessionstore.DefaultProbeInterval,
		"1": sessionstore.DefaultProbeInterval, "-5": sessionstore.DefaultProbeInterval, "1e3": sessionstore.DefaultProbeInterval, "123456": sessionstore.DefaultProbeInterval,
	} {
		if got := parseMark([]byte(in)); got != want && !(in == "1" && got == time.Millisecond) {
			t.Errorf("parseMark(%q) = %v, want %v", in, got, want)
		}
	}
	if got := parseMark(appendMark(nil, 2500*time.Millisecond)); got != 2500*time.Millisecond {
		t.Errorf("a mark of 2.5s reads %v", got)
	}
}

// FuzzMark: whatever a mark holds, it reads as an interval of 1ms to
// maxMarkInterval (a starting process never waits longer than that for
// others), and a mark written for such an interval reads back as it.
func FuzzMark(f *testing.F) {
	for _, s := range []string{"1000", "100", "0", "", "99999", "-1", "1e3", "\x00", "10000"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := parseMark(b)
		if d < time.Millisecond || d > maxMarkInterval {
			t.Fatalf("%q reads as %v", b, d)
		}
		if back := parseMark(appendMark(nil, d)); back != d {
			t.Fatalf("%q: %v written and read back as %v", b, d, back)
		}
	})
}
