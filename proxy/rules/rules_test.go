package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestParseRate(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"10r/s": 100 * time.Millisecond, "1r/s": time.Second, "30r/m": 2 * time.Second,
		"1r/m": time.Minute, "1000000r/s": time.Microsecond,
	} {
		r, err := ParseRate(s)
		if err != nil || r.Interval != want {
			t.Errorf("%q: %v %v, want %v", s, r.Interval, err, want)
		}
	}
	for _, s := range []string{"", "10", "10r", "r/s", "0r/s", "-1r/s", "+1r/s", "1.5r/s", "10r/h", "10 r/s", "2000000r/s", "99999999999999999999r/s"} {
		if _, err := ParseRate(s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func TestTemplate(t *testing.T) {
	v := &Vars{RequestURI: []byte("/a%20b?x=1"), URI: []byte("/a b"), Host: []byte("example.com"), Scheme: []byte("https"), Args: []byte("x=1")}
	for src, want := range map[string]string{
		"https://example.com$request_uri":    "https://example.com/a%20b?x=1",
		"$scheme://${host}$uri$is_args$args": "https://example.com/a b?x=1",
		"$uri/index.html":                    "/a b/index.html",
		"cost: 5$ and $ and $-":              "cost: 5$ and $ and $-",
		"$query_string$":                     "x=1$",
		"plain":                              "plain",
		"":                                   "",
	} {
		tpl, err := ParseTemplate(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if got := string(tpl.Append(nil, v)); got != want {
			t.Errorf("%q expands to %q, want %q", src, got, want)
		}
	}
	for _, src := range []string{"$request_url", "${uri", "${}", "$Host", "x$remote_addr", "$1"} {
		if _, err := ParseTemplate(src); err == nil {
			t.Errorf("%q: no error", src)
		}
	}
	_, err := ParseTemplate("https://x$request_url")
	if err == nil || !strings.Contains(err.Error(), "unknown variable $request_url") {
		t.Errorf("the error does not name the variable: %v", err)
	}
}

func TestTemplateAppendDoesNotAllocate(t *testing.T) {
	tpl, _ := ParseTemplate("$scheme://$host$request_uri")
	v := &Vars{RequestURI: []byte("/x"), Host: []byte("h"), Scheme: []byte("http")}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = tpl.Append(buf[:0], v) }); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
}

func htpasswdLine(t testing.TB, user, pass string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h)
}

func TestHtpasswd(t *testing.T) {
	data := "# users\n\n" + htpasswdLine(t, "alice", "a") + "\r\n" + htpasswdLine(t, "bob", "b") + ":comment\n"
	h, err := ParseHtpasswd([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{{"alice", "a", true}, {"bob", "b", true}, {"alice", "b", false}, {"carol", "a", false}, {"", "", false}, {"alic", "a", false}, {"alicex", "a", false}} {
		if got := h.Verify([]byte(c.user), []byte(c.pass)); got != c.ok {
			t.Errorf("%s:%s: %v, want %v", c.user, c.pass, got, c.ok)
		}
	}
	for _, bad := range []string{"alice:plain\n", "nocolon\n", ":$2y$10$x\n", "", "# only a comment\n", "alice:{SHA}abc\n", "a:$2y$15$abcdefghijklmnopqrstuuVNqFQeQ7xV2tJ7N.2TzEQ3aXYZabcde\n"} {
		if _, err := ParseHtpasswd([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	_, err = ParseHtpasswd([]byte(htpasswdLine(t, "a", "b") + "\nbob:plain\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("the error does not name line 2: %v", err)
	}
}

// TestHtpasswdUnknownUserRunsBcrypt: a user who is not in the file costs
// one bcrypt comparison too (against a hash of the file's cost), and a
// known one exactly one, so that timing does not tell users apart.
func TestHtpasswdUnknownUserRunsBcrypt(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), 6)
	h, err := ParseHtpasswd([]byte("alice:" + string(hash) + "\n" + htpasswdLine(t, "bob", "b") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(h.dummy); c != 6 {
		t.Errorf("the dummy hash has cost %d, the file's highest is 6", c)
	}
	var hashes [][]byte
	compareHash = func(hash, pw []byte) error {
		hashes = append(hashes, hash)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	defer func() { compareHash = bcrypt.CompareHashAndPassword }()
	for _, user := range []string{"alice", "nobody-at-all", ""} {
		hashes = hashes[:0]
		h.Verify([]byte(user), []byte("wrong"))
		if len(hashes) != 1 {
			t.Errorf("user %q: %d bcrypt comparisons, want 1", user, len(hashes))
		}
		if user != "alice" && string(hashes[0]) != string(h.dummy) {
			t.Errorf("user %q: compared with %q, want the dummy", user, hashes[0])
		}
	}
}

func TestLimiterBurstThenRate(t *testing.T) {
	r, _ := ParseRate("10r/s")
	l := NewLimiter(r, 3, 0)
	now := time.Unix(1000, 0)
	key := []byte("client")
	for i := range 4 {
		if ok, _ := l.Allow(key, now); !ok {
			t.Fatalf("request %d of burst 3 refused", i+1)
		}
	}
	ok, wait := l.Allow(key, now)
	if ok || wait != 100*time.Millisecond {
		t.Fatalf("request 5 at once: %v wait %v, want refused and 100ms", ok, wait)
	}
	// A refused request does not fill the bucket (nginx does not count it).
	if ok, _ := l.Allow(key, now.Add(100*time.Millisecond)); !ok {
		t.Fatal("after one interval a request is let through")
	}
	if ok, _ := l.Allow(key, now.Add(100*time.Millisecond)); ok {
		t.Fatal("and only one")
	}
	if ok, _ := l.Allow([]byte("other"), now); !ok {
		t.Fatal("another key has its own bucket")
	}
	// Burst 0: one request per interval.
	l0 := NewLimiter(r, 0, 0)
	if ok, _ := l0.Allow(key, now); !ok {
		t.Fatal("burst 0: the first request")
	}
	if ok, _ := l0.Allow(key, now.Add(50*time.Millisecond)); ok {
		t.Fatal("burst 0: a second within the interval")
	}
	if ok, _ := l0.Allow(key, now.Add(100*time.Millisecond)); !ok {
		t.Fatal("burst 0: a second after the interval")
	}
}

// TestLimiterMemoryBounded: a flood of distinct keys never grows the
// table, and a key that is over its limit is remembered through a flood
// of keys that each sent one request long ago... until its set is full
// of fuller buckets.
func TestLimiterMemoryBounded(t *testing.T) {
	r, _ := ParseRate("1r/m")
	l := NewLimiter(r, 0, 1024)
	size := 0
	for i := range l.shards {
		size += len(l.shards[i].slots)
	}
	if size > 1024+limiterShards*limiterWays {
		t.Fatalf("%d slots for 1024 keys", size)
	}
	now := time.Unix(1000, 0)
	hot := []byte("hot")
	l.Allow(hot, now)
	// Keys that sent their one request an hour ago: empty buckets.
	for i := range 100_000 {
		l.Allow(fmt.Appendf(nil, "old-%d", i), now.Add(-time.Hour))
	}
	if ok, _ := l.Allow(hot, now); ok {
		t.Error("the full bucket was evicted for empty ones")
	}
	after := 0
	for i := range l.shards {
		after += len(l.shards[i].slots)
	}
	if after != size {
		t.Errorf("the table grew from %d to %d slots", size, after)
	}
}

func TestLimiterAllowDoesNotAllocate(t *testing.T) {
	r, _ := ParseRate("10r/s")
	l := NewLimiter(r, 10, 0)
	key := []byte("client")
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { l.Allow(key, now) }); n != 0 {
		t.Errorf("Allow allocates %v times", n)
	}
}
