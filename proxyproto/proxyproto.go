// Package proxyproto reads the PROXY protocol header (versions 1 and 2)
// that L4 load balancers such as HAProxy and AWS NLB put in front of a
// connection to pass on the client's address.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Errors of Parse.
var (
	// ErrIncomplete means more bytes are needed to finish the header.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
	// ErrNoHeader means the bytes do not start with a PROXY header.
	ErrNoHeader = errors.New("proxyproto: no PROXY header")
	// ErrInvalid means the header is malformed.
	ErrInvalid = errors.New("proxyproto: invalid header")
)

// Header is what a PROXY header says about a connection.
type Header struct {
	// Source is the client's address; not valid for a LOCAL (v2) or
	// UNKNOWN (v1) header, where the connection's own peer stands.
	Source netip.AddrPort
	// Dest is the address the client connected to.
	Dest netip.AddrPort
}

var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// maxV1 is the longest version 1 header, CRLF included.
const maxV1 = 107

// MaxHeader is the longest header Parse accepts: a version 2 header with
// up to 4 KiB of addresses and TLVs.
const MaxHeader = 16 + 4096

// Parse reads a PROXY header at the start of b and returns it with its
// length in bytes. It returns ErrIncomplete when b ends inside a header
// that may still be valid.
func Parse(b []byte) (Header, int, error) {
	switch {
	case len(b) >= len(v2sig) && bytes.Equal(b[:len(v2sig)], v2sig):
		return parseV2(b)
	case len(b) < len(v2sig) && bytes.HasPrefix(v2sig, b) && len(b) > 0:
		return Header{}, 0, ErrIncomplete
	case bytes.HasPrefix(b, []byte("PROXY ")):
		return parseV1(b)
	case len(b) < 6 && bytes.HasPrefix([]byte("PROXY "), b):
		return Header{}, 0, ErrIncomplete
	}
	return Header{}, 0, ErrNoHeader
}

func parseV1(b []byte) (Header, int, error) {
	end := bytes.Index(b, []byte("\r\n"))
	if end < 0 {
		if len(b) >= maxV1 {
			return Header{}, 0, ErrInvalid
		}
		return Header{}, 0, ErrIncomplete
	}
	if end+2 > maxV1 {
		return Header{}, 0, ErrInvalid
	}
	f := bytes.Split(b[len("PROXY "):end], []byte(" "))
	if len(f) >= 1 && string(f[0]) == "UNKNOWN" {
		return Header{}, end + 2, nil
	}
	if len(f) != 5 || (string(f[0]) != "TCP4" && string(f[0]) != "TCP6") {
		return Header{}, 0, ErrInvalid
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sp, err3 := parsePort(f[3])
	dp, err4 := parsePort(f[4])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || src.Is4() != (string(f[0]) == "TCP4") || dst.Is4() != src.Is4() || src.Zone() != "" || dst.Zone() != "" {
		return Header{}, 0, ErrInvalid
	}
	return Header{Source: netip.AddrPortFrom(src, sp), Dest: netip.AddrPortFrom(dst, dp)}, end + 2, nil
}

func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, ErrInvalid
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(n), err
}

func parseV2(b []byte) (Header, int, error) {
	if len(b) < 16 {
		return Header{}, 0, ErrIncomplete
	}
	verCmd, fam := b[12], b[13]
	n := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 || 16+n > MaxHeader {
		return Header{}, 0, ErrInvalid
	}
	if len(b) < 16+n {
		return Header{}, 0, ErrIncomplete
	}
	total := 16 + n
	if verCmd&0xf == 0 { // LOCAL: the balancer's own connection (health checks)
		return Header{}, total, nil
	}
	body := b[16:total]
	switch fam {
	case 0x11, 0x12: // TCP or UDP over IPv4
		if n < 12 {
			return Header{}, 0, ErrInvalid
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		return Header{
			Source: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10])),
			Dest:   netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12])),
		}, total, nil
	case 0x21, 0x22: // IPv6
		if n < 36 {
			return Header{}, 0, ErrInvalid
		}
		src := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		dst := netip.AddrFrom16([16]byte(body[16:32])).Unmap()
		return Header{
			Source: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34])),
			Dest:   netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36])),
		}, total, nil
	case 0x00, 0x31, 0x32: // UNSPEC, unix sockets: no address to use
		return Header{}, total, nil
	}
	return Header{}, 0, ErrInvalid
}

// Listener wraps a listener whose every connection must start with a
// PROXY header; a connection without a valid one is closed. The header is
// read by the connection's first Read or RemoteAddr, in the goroutine that
// serves it, so a slow client never holds up Accept. Set the fields before
// Accept is first called.
type Listener struct {
	net.Listener
	// Timeout bounds reading the header (default 5s).
	Timeout time.Duration
	// Trusted, if not nil, says whether a peer may name the client: the
	// header's source address replaces the peer's only when Trusted
	// returns true for the peer. Anyone who can reach the port can send
	// a header: from a peer that is not the load balancer, the address
	// in it is a claim, not a fact. The header is still required and
	// read from every peer. Nil trusts every peer. It is called once per
	// connection, from the goroutine that serves it.
	Trusted func(peer netip.Addr) bool
}

// Accept returns the next connection, its header not yet read.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	t := l.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	return &Conn{Conn: c, timeout: t, trusted: l.Trusted}, nil
}

// Conn is a connection whose RemoteAddr is the client named in its PROXY
// header, when its peer is trusted.
type Conn struct {
	net.Conn
	timeout time.Duration
	trusted func(netip.Addr) bool // nil: every peer
	once    sync.Once
	err     error    // set once the header could not be read
	rest    []byte   // bytes read past the header
	remote  net.Addr // from the header; nil: the peer's own
}

func (c *Conn) readHeader() {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, used, perr := Parse(buf)
		switch {
		case perr == nil:
			c.rest = buf[used:]
			if h.Source.IsValid() && c.trusts(c.Conn.RemoteAddr()) {
				c.remote = net.TCPAddrFromAddrPort(h.Source)
			}
			return
		case perr != ErrIncomplete:
			c.err = fmt.Errorf("%w from %s", perr, c.Conn.RemoteAddr())
			return
		case err != nil:
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			c.err = fmt.Errorf("proxyproto: reading header from %s: %w", c.Conn.RemoteAddr(), err)
			return
		}
	}
}

// trusts reports whether the peer at a may name the client.
func (c *Conn) trusts(a net.Addr) bool {
	if c.trusted == nil {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ok && c.trusted(ip.Unmap())
}

// Read reads the bytes after the header. It fails, and the connection is
// closed, when there is no valid header.
func (c *Conn) Read(b []byte) (int, error) {
	c.once.Do(c.readHeader)
	if c.err != nil {
		c.Conn.Close()
		return 0, c.err
	}
	if len(c.rest) > 0 {
		n := copy(b, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// RemoteAddr returns the client's address from the header, or the peer's
// when the header names none (LOCAL, UNKNOWN), could not be read, or comes
// from a peer the listener does not trust.
func (c *Conn) RemoteAddr() net.Addr {
	c.once.Do(c.readHeader)
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// ReadFrom lets a file reach the socket through sendfile, as it would
// without the wrapper.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
