package proxyproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// v2 builds a version 2 header: cmd 1 PROXY, 0 LOCAL.
func v2(cmd, fam byte, addrs []byte) []byte {
	b := append([]byte{}, v2sig...)
	b = append(b, 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(addrs)))
	return append(b, addrs...)
}

func v4addrs(src, dst string, sp, dp uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sp), dp)
}

func v6addrs(src, dst string, sp, dp uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, sp), dp)
}

var parseTests = []struct {
	name string
	in   []byte
	src  string // "" for none
	n    int
	err  error
}{
	{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET"), "203.0.113.7:51234", 43, nil},
	{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"), "[2001:db8::1]:1", 40, nil},
	{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", 15, nil},
	{"v1 unknown with addresses", []byte("PROXY UNKNOWN ff 00 1 2\r\n"), "", 25, nil},
	{"v1 incomplete", []byte("PROXY TCP4 203.0.113.7"), "", 0, ErrIncomplete},
	{"v1 prefix", []byte("PRO"), "", 0, ErrIncomplete},
	{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n"), "", 0, ErrInvalid},
	{"v1 bad port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n"), "", 0, ErrInvalid},
	{"v1 leading zero port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n"), "", 0, ErrInvalid},
	{"v1 too few fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"), "", 0, ErrInvalid},
	{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 120)), "", 0, ErrInvalid},
	{"v1 lowercase", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "", 0, ErrNoHeader},
	{"plain http", []byte("GET / HTTP/1.1\r\n"), "", 0, ErrNoHeader},
	{"v2 tcp4", v2(1, 0x11, v4addrs("203.0.113.7", "10.0.0.1", 51234, 443)), "203.0.113.7:51234", 28, nil},
	{"v2 tcp6", v2(1, 0x21, v6addrs("2001:db8::1", "2001:db8::2", 7, 8)), "[2001:db8::1]:7", 52, nil},
	{"v2 tcp4 with TLVs", v2(1, 0x11, append(v4addrs("203.0.113.7", "10.0.0.1", 1, 2), 0x04, 0, 1, 'x')), "203.0.113.7:1", 32, nil},
	{"v2 local", v2(0, 0x00, nil), "", 16, nil},
	{"v2 unspec", v2(1, 0x00, []byte{1, 2, 3}), "", 19, nil},
	{"v2 short addresses", v2(1, 0x11, []byte{1, 2, 3}), "", 0, ErrInvalid},
	{"v2 bad version", append(append([]byte{}, v2sig...), 0x11, 0x11, 0, 0), "", 0, ErrInvalid},
	{"v2 bad command", append(append([]byte{}, v2sig...), 0x22, 0x11, 0, 0), "", 0, ErrInvalid},
	{"v2 bad family", v2(1, 0x99, make([]byte, 12)), "", 0, ErrInvalid},
	{"v2 incomplete", v2(1, 0x11, v4addrs("1.2.3.4", "5.6.7.8", 1, 2))[:20], "", 0, ErrIncomplete},
	{"v2 signature prefix", v2sig[:5], "", 0, ErrIncomplete},
	{"v2 huge", append(append([]byte{}, v2sig...), 0x21, 0x11, 0xff, 0xff), "", 0, ErrInvalid},
}

func TestParse(t *testing.T) {
	for _, tc := range parseTests {
		h, n, err := Parse(tc.in)
		if !errors.Is(err, tc.err) || n != tc.n {
			t.Errorf("%s: n %d err %v, want %d %v", tc.name, n, err, tc.n, tc.err)
			continue
		}
		got := ""
		if h.Source.IsValid() {
			got = h.Source.String()
		}
		if got != tc.src {
			t.Errorf("%s: source %q, want %q", tc.name, got, tc.src)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range parseTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			if n != 0 || h.Source.IsValid() {
				t.Fatalf("error %v with n %d source %v", err, n, h.Source)
			}
			return
		}
		if n <= 0 || n > len(b) || n > MaxHeader {
			t.Fatalf("n %d of %d bytes", n, len(b))
		}
		// A header parsed from a prefix parses the same with more bytes behind it.
		h2, n2, err2 := Parse(append(append([]byte{}, b[:n]...), "GET / HTTP/1.1\r\n"...))
		if err2 != nil || n2 != n || h2 != h {
			t.Fatalf("with a request behind: %v %d %v, alone %d %v", err2, n2, h2, n, h)
		}
		// Every shorter prefix is incomplete, never a different header.
		for i := 1; i < n; i++ {
			if _, _, err := Parse(b[:i]); err != ErrIncomplete && err != ErrInvalid {
				t.Fatalf("prefix of %d bytes: %v", i, err)
			}
		}
	})
}

// echoServer accepts through a PROXY listener and answers each connection
// with its remote address and the first line it read.
func echoServer(t *testing.T) string {
	t.Helper()
	return echoServerTrusting(t, nil)
}

// echoServerTrusting is echoServer with Listener.Trusted set to trusted.
func echoServerTrusting(t *testing.T, trusted func(netip.Addr) bool) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &Listener{Listener: raw, Timeout: 2 * time.Second, Trusted: trusted}
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
				if err != nil {
					return
				}
				io.WriteString(c, c.RemoteAddr().String()+" "+line)
			}()
		}
	}()
	return raw.Addr().String()
}

func TestListener(t *testing.T) {
	addr := echoServer(t)
	for _, tc := range []struct {
		name string
		send []byte
		want string // "" : the connection is closed without an answer
	}{
		{"v1", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nhello\n"), "203.0.113.7:51234 hello\n"},
		{"v2", append(v2(1, 0x11, v4addrs("198.51.100.9", "10.0.0.1", 4000, 443)), "hi\n"...), "198.51.100.9:4000 hi\n"},
		{"v2 local keeps the peer", append(v2(0, 0, nil), "hc\n"...), "127.0.0.1:"},
		{"no header", []byte("GET / HTTP/1.1\r\n"), ""},
		{"broken header", []byte("PROXY TCP4 x y 1 2\r\nGET / HTTP/1.1\r\n"), ""},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// Byte by byte: the header must be found however it is split.
		for _, b := range tc.send {
			if _, err := c.Write([]byte{b}); err != nil {
				break
			}
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if tc.want == "" && len(got) != 0 || !strings.HasPrefix(string(got), tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestListenerTimesOutASilentClient(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &Listener{Listener: raw, Timeout: 100 * time.Millisecond}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(3 * time.Second)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read succeeded without a header")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a client that sends nothing held the connection past the timeout")
	}
}

// TestListenerTrustsOnlyTrustedPeers: anyone who reaches the port can send
// a PROXY header; from a peer Trusted refuses, the address in it is not
// taken, though the header is still required and consumed.
func TestListenerTrustsOnlyTrustedPeers(t *testing.T) {
	var asked []netip.Addr
	var mu sync.Mutex
	trust := func(peer bool) func(netip.Addr) bool {
		return func(a netip.Addr) bool {
			mu.Lock()
			asked = append(asked, a)
			mu.Unlock()
			return peer
		}
	}
	for _, tc := range []struct {
		name    string
		trusted bool
		send    []byte
		want    string // "" : closed without an answer
	}{
		{"trusted v1", true, []byte("PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nhello\n"), "203.0.113.7:51234 hello\n"},
		{"untrusted v1", false, []byte("PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nhello\n"), "127.0.0.1:"},
		{"untrusted v2", false, append(v2(1, 0x11, v4addrs("198.51.100.9", "10.0.0.1", 4000, 443)), "hi\n"...), "127.0.0.1:"},
		{"untrusted, no header", false, []byte("hello\n"), ""},
	} {
		addr := echoServerTrusting(t, trust(tc.trusted))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(tc.send)
		got, _ := io.ReadAll(c)
		c.Close()
		if tc.want == "" && len(got) != 0 || !strings.HasPrefix(string(got), tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		if tc.want != "" && !strings.HasSuffix(string(got), " hello\n") && !strings.HasSuffix(string(got), " hi\n") {
			t.Errorf("%s: the header was not consumed: %q", tc.name, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range asked {
		if a != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("Trusted was asked about %v, not the TCP peer", a)
		}
	}
}
