package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	pp "github.com/pires/go-proxyproto"
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

var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// headerTests are headers as a connection's first bytes, and the client
// address the connection then has: "peer" for the TCP peer's own, ""
// when the connection is closed unanswered (no valid header).
var headerTests = []struct {
	name string
	in   []byte
	want string
}{
	{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n"), "203.0.113.7:51234"},
	{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"), "[2001:db8::1]:1"},
	{"v1 tcp6 mapped", []byte("PROXY TCP6 ::ffff:203.0.113.7 ::ffff:10.0.0.1 1 2\r\n"), "203.0.113.7:1"},
	{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "peer"},
	{"v1 unknown with addresses", []byte("PROXY UNKNOWN ff 00 1 2\r\n"), "peer"},
	{"v1 incomplete", []byte("PROXY TCP4 203.0.113.7"), ""},
	{"v1 prefix", []byte("PRO"), ""},
	{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n"), ""},
	{"v1 bad port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n"), ""},
	{"v1 leading zero port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n"), ""},
	{"v1 too few fields", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"), ""},
	{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 120)), ""},
	{"v1 lowercase", []byte("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), ""},
	{"plain http", []byte("GET / HTTP/1.1\r\n"), ""},
	{"v2 tcp4", v2(1, 0x11, v4addrs("203.0.113.7", "10.0.0.1", 51234, 443)), "203.0.113.7:51234"},
	{"v2 udp4", v2(1, 0x12, v4addrs("203.0.113.7", "10.0.0.1", 51234, 443)), "203.0.113.7:51234"},
	{"v2 tcp6", v2(1, 0x21, v6addrs("2001:db8::1", "2001:db8::2", 7, 8)), "[2001:db8::1]:7"},
	{"v2 tcp6 mapped", v2(1, 0x21, v6addrs("::ffff:203.0.113.7", "::ffff:10.0.0.1", 7, 8)), "203.0.113.7:7"},
	{"v2 tcp4 with TLVs", v2(1, 0x11, append(v4addrs("203.0.113.7", "10.0.0.1", 1, 2), 0x04, 0, 1, 'x')), "203.0.113.7:1"},
	{"v2 local", v2(0, 0x00, nil), "peer"},
	{"v2 local with addresses", v2(0, 0x11, v4addrs("203.0.113.7", "10.0.0.1", 1, 2)), "peer"},
	{"v2 unix", v2(1, 0x31, make([]byte, 216)), "peer"},
	// UNSPEC with the PROXY command: the spec lets a receiver accept it
	// (with the peer's address) or refuse it; the hand-written parser
	// accepted it, go-proxyproto refuses it. No balancer we know sends it
	// (HAProxy sends LOCAL for a connection it has no address for).
	{"v2 unspec", v2(1, 0x00, []byte{1, 2, 3}), ""},
	{"v2 short addresses", v2(1, 0x11, []byte{1, 2, 3}), ""},
	{"v2 bad version", append(append([]byte{}, v2sig...), 0x11, 0x11, 0, 0), ""},
	{"v2 bad command", append(append([]byte{}, v2sig...), 0x22, 0x11, 0, 0), ""},
	{"v2 bad family", v2(1, 0x99, make([]byte, 12)), ""},
	{"v2 incomplete", v2(1, 0x11, v4addrs("1.2.3.4", "5.6.7.8", 1, 2))[:20], ""},
	{"v2 signature prefix", v2sig[:5], ""},
	{"v2 huge", append(append([]byte{}, v2sig...), 0x21, 0x11, 0xff, 0xff), ""},
}

// TestHeaders sends each header and a line behind it to a real listener:
// a valid header gives the connection its client address and the line
// arrives whole; anything else closes the connection unanswered.
func TestHeaders(t *testing.T) {
	addr := echoServer(t)
	for _, tc := range headerTests {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(append(append([]byte{}, tc.in...), "hello\n"...))
		c.(*net.TCPConn).CloseWrite() // an incomplete header ends here
		got, _ := io.ReadAll(c)
		c.Close()
		want := tc.want + " hello\n"
		switch tc.want {
		case "":
			want = ""
		case "peer":
			want = c.LocalAddr().String() + " hello\n"
		}
		if string(got) != want {
			t.Errorf("%s: got %q, want %q", tc.name, got, want)
		}
	}
}

// FuzzConn: whatever a connection starts with, it is refused exactly when
// the library refuses those bytes as a header, and otherwise read on from
// where the header ends, with the header's IP source (never a Unix
// socket's name, never an IPv4-mapped IPv6 form) or the peer as client.
func FuzzConn(f *testing.F) {
	for _, tc := range headerTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append(append([]byte{}, b...), "\nEND"...)
		rd := bytes.NewReader(in)
		br := bufio.NewReader(rd)
		h, herr := pp.Read(br)
		// What follows the header: what the library has buffered and
		// what it has not read yet (a header longer than its buffer
		// leaves bytes in rd).
		rest := in[len(in)-br.Buffered()-rd.Len():]
		client, server := net.Pipe()
		go func() {
			client.Write(in)
			client.Close()
		}()
		ln := &Listener{Listener: oneConn{server}, Timeout: time.Second}
		c, _ := ln.Accept()
		defer c.Close()
		got, err := io.ReadAll(c)
		remote := c.RemoteAddr()
		if herr != nil {
			if err == nil || remote != server.RemoteAddr() {
				t.Fatalf("%q: the library refuses it (%v), the connection read %q as %v", in, herr, got, remote)
			}
			return
		}
		if err != nil || string(got) != string(rest) {
			t.Fatalf("%q: read %q, %v after the header", in, got, err)
		}
		want := server.RemoteAddr()
		if ip, ok := h.SourceAddr.(interface{ AddrPort() netip.AddrPort }); ok && !h.Command.IsLocal() {
			ap := ip.AddrPort()
			want = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		if remote.String() != want.String() {
			t.Fatalf("%q: client %v, want %v", in, remote, want)
		}
	})
}

// oneConn is a listener that accepts c once.
type oneConn struct{ c net.Conn }

func (l oneConn) Accept() (net.Conn, error) { return l.c, nil }
func (l oneConn) Close() error              { return nil }
func (l oneConn) Addr() net.Addr            { return l.c.LocalAddr() }

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
