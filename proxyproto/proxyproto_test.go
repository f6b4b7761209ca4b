package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// v2 builds a version 2 header: PROXY command, TCP over IPv4, with tlv
// bytes after the addresses.
func v2(src, dst netip.AddrPort, tlv []byte) []byte {
	b := append([]byte{}, v2sig...)
	b = append(b, 0x21, 0x11)
	b = binary.BigEndian.AppendUint16(b, uint16(12+len(tlv)))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	return append(b, tlv...)
}

var (
	client = netip.MustParseAddrPort("203.0.113.7:51234")
	server = netip.MustParseAddrPort("192.0.2.1:443")
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		src  string // "" with err nil: a header that names no client
		n    int
		err  error
	}{
		{"v1 tcp4", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET", "203.0.113.7:51234", 44, nil},
		{"v1 tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", "[2001:db8::1]:1", 40, nil},
		{"v1 unknown", "PROXY UNKNOWN\r\n", "", 15, nil},
		{"v1 incomplete", "PROXY TCP4 203.0.113.7", "", 0, ErrIncomplete},
		{"v1 prefix", "PRO", "", 0, ErrIncomplete},
		{"v1 bad address", "PROXY TCP4 203.0.113.x 192.0.2.1 1 2\r\n", "", 0, ErrInvalid},
		{"v1 bad port", "PROXY TCP4 203.0.113.7 192.0.2.1 99999 2\r\n", "", 0, ErrInvalid},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n", "", 0, ErrInvalid},
		{"v1 too long", "PROXY TCP4 " + string(bytes.Repeat([]byte("1"), 200)), "", 0, ErrInvalid},
		{"plain HTTP", "GET / HTTP/1.1\r\n\r\n", "", 0, ErrNoHeader},
		{"v2 tcp4", string(v2(client, server, nil)) + "GET", "203.0.113.7:51234", 28, nil},
		{"v2 with TLVs", string(v2(client, server, []byte{0x04, 0, 1, 'x'})), "203.0.113.7:51234", 32, nil},
		{"v2 incomplete", string(v2(client, server, nil)[:20]), "", 0, ErrIncomplete},
		{"v2 signature prefix", string(v2sig[:5]), "", 0, ErrIncomplete},
	} {
		h, n, err := Parse([]byte(tc.in))
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if n != tc.n {
			t.Errorf("%s: length %d, want %d", tc.name, n, tc.n)
		}
		if got := h.Source; (tc.src == "") != !got.IsValid() || (tc.src != "" && got.String() != tc.src) {
			t.Errorf("%s: source %v, want %q", tc.name, got, tc.src)
		}
	}
}

// FuzzParse: whatever the bytes, Parse does not panic, a header it accepts
// lies within the input and within MaxHeader, and an incomplete one stays
// incomplete or becomes decided as bytes are added (never accepted longer
// than what was given).
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2(client, server, nil))
	f.Add(v2(client, server, []byte{0x04, 0, 1, 'x'}))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, n, err := Parse(b)
		if err == nil && (n <= 0 || n > len(b) || n > MaxHeader) {
			t.Fatalf("accepted a header of %d bytes from %d (max %d)", n, len(b), MaxHeader)
		}
		if err == ErrIncomplete && len(b) > MaxHeader {
			t.Fatalf("still incomplete after %d bytes", len(b))
		}
	})
}

// serve accepts one connection through a Listener and reports what the
// server side saw: its remote address and the bytes after the header.
func serve(t *testing.T, send []byte) (remote net.Addr, got []byte, err error) {
	t.Helper()
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer ln.Close()
	pl := &Listener{Listener: ln, Timeout: 2 * time.Second}
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		c.Write(send)
		c.(*net.TCPConn).CloseWrite()
		time.Sleep(500 * time.Millisecond)
		c.Close()
	}()
	c, aerr := pl.Accept()
	if aerr != nil {
		t.Fatal(aerr)
	}
	defer c.Close()
	got, err = io.ReadAll(c)
	return c.RemoteAddr(), got, err
}

func TestListenerTakesTheClientFromTheHeader(t *testing.T) {
	remote, got, err := serve(t, []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET / HTTP/1.1\r\n\r\n"))
	if err != nil || string(got) != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("after the header: %q, %v", got, err)
	}
	if remote.String() != "203.0.113.7:51234" {
		t.Fatalf("RemoteAddr %v, want the client named in the header", remote)
	}
	remote, got, err = serve(t, append(v2(client, server, nil), "hello"...))
	if err != nil || string(got) != "hello" || remote.String() != client.String() {
		t.Fatalf("v2: %v %q %v", remote, got, err)
	}
}

func TestListenerClosesConnectionsWithoutHeader(t *testing.T) {
	for _, send := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "PROXY TCP4 1.2.3.4\r\n", "PROXY TCP4 203.0.113.7"} {
		remote, got, err := serve(t, []byte(send))
		if err == nil || len(got) != 0 {
			t.Errorf("%q: read %q, %v; want an error and nothing", send, got, err)
		}
		if remote.String() == "203.0.113.7:51234" {
			t.Errorf("%q: a broken header set the client address", send)
		}
	}
}
