package memcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// uriencode escapes key as memcached's metadump does: every byte but
// letters, digits and -._~ as %XX.
func uriencode(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func metadumpLine(key string) string {
	return "key=" + uriencode(key) + " exp=-1 la=1796308732 cas=1 fetch=no cls=1 size=67\n"
}

var metadumpKeyTests = []struct {
	line string
	key  string
	end  bool
	err  string // substring of the error; "" for none
}{
	{line: metadumpLine("sp:abc"), key: "sp:abc"},
	{line: "key=a%2Bb%25c exp=1796308832 la=1796308732 cas=2 fetch=no cls=1 size=65\n", key: "a+b%c"},
	{line: "key=plain\n", key: "plain"},
	{line: "key=plain", key: "plain"}, // the last line of a chunk, newline already cut
	{line: "END\r\n", end: true},
	{line: "END", end: true},
	{line: "OK\r\n"},
	{line: "BUSY currently processing crawler request\r\n", err: "BUSY currently processing"},
	{line: "ERROR\r\n", err: `"ERROR"`},
	{line: "CLIENT_ERROR bad command line format\r\n", err: "CLIENT_ERROR"},
	{line: "SERVER_ERROR out of memory\r\n", err: "SERVER_ERROR"},
	{line: "BADCLASS invalid class id\r\n", err: "BADCLASS"},
	{line: "key= exp=-1\n", err: "malformed key"},
	{line: "key=%zz exp=-1\n", err: "malformed key"},
	{line: "key=abc%\n", err: "malformed key"},
	{line: "\n", err: "malformed line"},
	{line: "ENDS\r\n", err: "malformed line"},
	{line: "+OK\r\n", err: "malformed line"}, // a Redis at the address
	{line: "Key=abc\n", err: "malformed line"},
	{line: strings.Repeat("x", 500) + "\n", err: "malformed line"},
}

func TestMetadumpKey(t *testing.T) {
	for _, tt := range metadumpKeyTests {
		k, end, err := metadumpKey(nil, []byte(tt.line))
		key := string(k)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("metadumpKey(%q) = %q, %v, %v; want an error with %q", tt.line, key, end, err, tt.err)
		case tt.err == "" && (err != nil || key != tt.key || end != tt.end):
			t.Errorf("metadumpKey(%q) = %q, %v, %v; want %q, %v", tt.line, key, end, err, tt.key, tt.end)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("metadumpKey of a %d-byte line: error of %d bytes, want the line clipped", len(tt.line), len(err.Error()))
		}
	}
}

// FuzzMetadumpKey: any line gives a key, the end, nothing or an error,
// never a panic; a key decodes as url.QueryUnescape decodes it, after
// what dst held; a key memcached escapes comes back as it was.
func FuzzMetadumpKey(f *testing.F) {
	for _, tt := range metadumpKeyTests {
		f.Add([]byte(tt.line), tt.key)
	}
	f.Add([]byte("key=sp%3AAAAAAAAAAAAAAAAAAAAAAA exp=-1\n"), "sp:"+strings.Repeat("A", 22))
	f.Add([]byte("key=\xff\x00 exp\r\n"), "\xff\x00 \r\n%")
	f.Fuzz(func(t *testing.T, line []byte, key string) {
		dst := []byte("held")
		k, end, err := metadumpKey(dst, line)
		if string(k[:len(dst)]) != "held" {
			t.Fatalf("%q: dst overwritten: %q", line, k)
		}
		k = k[len(dst):]
		if (err != nil || end) && len(k) != 0 {
			t.Fatalf("%q: key %q with end %v, error %v", line, k, end, err)
		}
		if rest, ok := bytes.CutPrefix(line, []byte("key=")); ok {
			enc, _, _ := bytes.Cut(bytes.TrimSuffix(bytes.TrimSuffix(rest, []byte("\n")), []byte("\r")), []byte(" "))
			want, uerr := url.QueryUnescape(string(enc))
			if (uerr != nil || want == "") != (err != nil) || err == nil && string(k) != want {
				t.Fatalf("%q: key %q, %v; url.QueryUnescape gives %q, %v", line, k, err, want, uerr)
			}
		}
		if len(key) == 0 || len(key) > 250 {
			return
		}
		got, end, err := metadumpKey(nil, []byte(metadumpLine(key)))
		if err != nil || end || string(got) != key {
			t.Fatalf("key %q escaped as memcached does: got %q, %v, %v", key, got, end, err)
		}
	})
}

// fakeMetadump is a server that expects lru_crawler metadump hash and then
// lets answer write what it likes: protocol corner cases memcached itself
// cannot be made to produce. It returns the server's address.
func fakeMetadump(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || line != "lru_crawler metadump hash\r\n" {
					fmt.Fprintf(c, "ERROR unexpected command %q\r\n", line)
					return
				}
				answer(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// Every broken answer ends the listing with an error that says what was
// wrong, after handing on only the keys of the lines before it.
func TestMetadumpBrokenStreams(t *testing.T) {
	k1, k2 := "sp:one", "sp:two two"
	good := metadumpLine(k1) + metadumpLine(k2)
	tests := []struct {
		name   string
		answer string
		stall  bool // keep the connection open, silent, after the answer
		keys   int
		err    string
	}{
		{name: "complete", answer: good + "END\r\n", keys: 2},
		{name: "OK before the dump", answer: "OK\r\n" + good + "END\r\n", keys: 2},
		{name: "busy", answer: "BUSY currently processing crawler request\r\n", err: "BUSY"},
		{name: "malformed line", answer: good + "garbage\r\n" + metadumpLine("sp:three") + "END\r\n", keys: 2, err: `malformed line "garbage"`},
		{name: "malformed key", answer: good + "key=%G0 exp=-1\n" + "END\r\n", keys: 2, err: "malformed key"},
		{name: "closed before END", answer: good, keys: 2, err: "stream broken before END: EOF"},
		{name: "closed inside a line", answer: good + "key=sp%3Aab", keys: 2, err: "stream broken before END"},
		{name: "line too long", answer: good + strings.Repeat("x", MetadumpMaxLine+10) + "\n", keys: 2, err: "longer than"},
		{name: "stalled", answer: good, stall: true, keys: 2, err: "nothing received for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			addr := fakeMetadump(t, func(c net.Conn) {
				c.Write([]byte(tt.answer))
				if tt.stall {
					<-release
				}
			})
			var keys []string
			err := Metadump(addr, time.Second, 500*time.Millisecond, nil, func(k []byte) error { keys = append(keys, string(k)); return nil })
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("listing: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("listing: %v, want an error with %q", err, tt.err)
			}
			if len(keys) != tt.keys || tt.keys == 2 && (keys[0] != k1 || keys[1] != k2) {
				t.Fatalf("listing handed on %q, want the first %d of %q", keys, tt.keys, []string{k1, k2})
			}
		})
	}
}

// The listing's deadline is an idle one: a dump that keeps arriving, if
// slowly, or a reader that takes its time between keys (copying them),
// lasts as long as it needs, several times the idle deadline.
func TestMetadumpDeadlineIsIdleNotTotal(t *testing.T) {
	const idle = time.Second
	const lines = 100
	addr := fakeMetadump(t, func(c net.Conn) {
		for i := 0; i < lines; i++ {
			c.Write([]byte(metadumpLine(fmt.Sprintf("sp:%d", i))))
			time.Sleep(25 * time.Millisecond)
		}
		c.Write([]byte("END\r\n"))
	})
	start := time.Now()
	n := 0
	err := Metadump(addr, time.Second, idle, nil, func([]byte) error {
		n++
		time.Sleep(30 * time.Millisecond) // the copying: 3s in all
		return nil
	})
	if err != nil || n != lines {
		t.Fatalf("slow listing: %d keys, %v; want %d and no error", n, err, lines)
	}
	if took := time.Since(start); took < 2*idle {
		t.Fatalf("the listing took %v, under twice the idle deadline: it tests nothing", took)
	}
}

// Closing stop ends a listing that waits for a server that hangs, at once
// and with ErrClosed, not after the idle deadline.
func TestMetadumpStop(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr := fakeMetadump(t, func(c net.Conn) {
		c.Write([]byte(metadumpLine("sp:a")))
		<-release
	})
	stop := make(chan struct{})
	time.AfterFunc(200*time.Millisecond, func() { close(stop) })
	start := time.Now()
	err := Metadump(addr, time.Second, 30*time.Second, stop, func([]byte) error { return nil })
	if !errors.Is(err, ErrClosed) || time.Since(start) > 5*time.Second {
		t.Fatalf("stopped listing: %v after %v, want ErrClosed at once", err, time.Since(start))
	}
}

// An error from fn ends the listing and comes back as it is.
func TestMetadumpFnError(t *testing.T) {
	addr := fakeMetadump(t, func(c net.Conn) {
		c.Write([]byte(metadumpLine("sp:a") + metadumpLine("sp:b") + "END\r\n"))
	})
	stopHere := errors.New("enough")
	n := 0
	err := Metadump(addr, time.Second, time.Second, nil, func([]byte) error { n++; return stopHere })
	if err != stopHere || n != 1 {
		t.Fatalf("fn's error: %v after %d keys, want it as is after 1", err, n)
	}
}

// Against memcached itself: every key stored is listed once, escaped by
// memcached and unescaped back as it was.
func TestMetadumpListsWhatMemcachedHolds(t *testing.T) {
	srv := memcachedtest.Start(t)
	p := New(srv.Addr, time.Second, 0)
	defer p.Close()
	want := map[string]bool{}
	for i := range 500 {
		key := fmt.Sprintf("sp:%d/%%+~", i)
		if err := p.Store(OpSet, []byte(key), []byte("v"), 0, 0, 3600); err != nil {
			t.Fatal(err)
		}
		want[key] = true
	}
	got := map[string]int{}
	err := Metadump(srv.Addr, time.Second, 5*time.Second, nil, func(k []byte) error { got[string(k)]++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("%q listed %d times, want once", k, got[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("listed %d keys, want %d", len(got), len(want))
	}
}

// A line costs no allocation once the key buffer has grown: most keys a
// server lists are skipped by a copy, and would otherwise be garbage.
func TestMetadumpKeyAllocatesNothing(t *testing.T) {
	key := "sp:" + strings.Repeat("A", 22)
	line := []byte(metadumpLine(key))
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		k, _, err := metadumpKey(buf[:0], line)
		if err != nil || string(k) != key {
			t.Fatalf("%q, %v", k, err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per line", n)
	}
}
