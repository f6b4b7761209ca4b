package memcache

import (
	"strconv"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// ReadStats reads what a monitor tells a restart by: the server's PID, its
// start (stable across reads), and the items it holds.
func TestReadStats(t *testing.T) {
	srv := memcachedtest.Start(t)
	st, err := ReadStats(srv.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if pid := strconv.FormatInt(st.PID, 10); pid != srv.PID() || st.CurrItems != 0 || st.Time == 0 {
		t.Fatalf("stats %+v, want pid %s and no items", st, srv.PID())
	}
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	for _, k := range []string{"a", "b", "c"} {
		if err := p.Store(OpSet, []byte(k), []byte("v"), 0, 0, 60); err != nil {
			t.Fatal(err)
		}
	}
	again, err := ReadStats(srv.Addr, time.Second)
	if err != nil || again.CurrItems != 3 || again.PID != st.PID || again.Started()-st.Started() > 1 {
		t.Fatalf("stats after 3 sets: %+v (%v), first %+v", again, err, st)
	}
	srv.Stop()
	if _, err := ReadStats(srv.Addr, time.Second); err == nil {
		t.Fatal("stats of a stopped server: no error")
	}
}

// The client flags of a store go to memcached as they are, read back by
// OpFlags and by another protocol; flags 0 are no flags.
func TestStoreFlags(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	for _, flags := range []uint32{7, 1<<32 - 1, 0} {
		key := []byte("k" + strconv.FormatUint(uint64(flags), 10))
		if err := p.Store(OpSet, key, []byte("v"), 0, flags, 60); err != nil {
			t.Fatal(err)
		}
		if _, got := textGet(t, srv.Addr, string(key)); got != flags {
			t.Fatalf("get %s reads flags %d, want %d", key, got, flags)
		}
		c := NewCall(OpFlags, nil, 0, 0, 0)
		p.Start(c, key)
		if err := c.Wait(); err != nil || c.Flags() != flags {
			t.Fatalf("mg f of %s: %d (%v), want %d", key, c.Flags(), err, flags)
		}
		c.Release()
	}
}

// An answer out of step with the stream may be a stored value: an error
// quoting it shows less than a secret's worth of it (CONTRACT section 12:
// never a whole session ID), while memcached's own error lines show.
func TestUnexpectedAnswerIsClipped(t *testing.T) {
	const secret = "AbCdEfGhIjKlMnOpQrStUv" // a session ID's 22 bytes
	for _, line := range []string{secret, "VA 12 " + secret, "x" + secret + "\x00"} {
		if got := answerForLog([]byte(line)); len(got) >= len(secret) {
			t.Errorf("answerForLog(%q) = %q: a secret's length", line, got)
		}
	}
	for _, line := range []string{"SERVER_ERROR out of memory storing object", "CLIENT_ERROR bad command line format", "ERROR"} {
		if got := answerForLog([]byte(line)); string(got) != line {
			t.Errorf("memcached's own %q became %q", line, got)
		}
	}
	if got := answerForLog([]byte("SERVER_ERROR " + string(make([]byte, 500)))); len(got) > 120 {
		t.Errorf("a long error line is kept whole: %d bytes", len(got))
	}
}
