// Package proxyproto accepts connections that start with a PROXY protocol
// header (versions 1 and 2), which L4 load balancers such as HAProxy and
// AWS NLB put in front of a connection to pass on the client's address.
//
// The header is read by github.com/pires/go-proxyproto, as Caddy reads it.
// This package adds the trust rule of CONTRACT.md section 12, which that
// library's policies cannot express: every connection must start with a
// header (its REQUIRE), yet the address in it is believed only from a
// trusted peer. The library's IGNORE, the policy for a peer that is not
// believed, also lets through a connection without any header, so the
// library sees REQUIRE for every peer and Conn decides here whether the
// address it read is used. It also keeps a version 1 header that arrives
// in pieces (wholeV1), which the library drops.
package proxyproto

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	pp "github.com/pires/go-proxyproto"
)

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
	pc := pp.NewConn(&wholeV1{Conn: c}, pp.WithPolicy(pp.REQUIRE), pp.SetReadHeaderTimeout(t))
	return &Conn{Conn: pc, pc: pc, peer: c, trusted: l.Trusted}, nil
}

// Conn is a connection whose RemoteAddr is the client named in its PROXY
// header, when its peer is trusted. Its LocalAddr is the socket's own,
// never the header's destination.
type Conn struct {
	net.Conn          // pc: reads past the header
	pc       *pp.Conn // reads the header once
	peer     net.Conn // the connection below, for its own addresses
	trusted  func(netip.Addr) bool
	once     sync.Once
	remote   net.Addr // the client: the header's source or the peer
}

// Read reads the bytes after the header. It fails, and the connection is
// closed, when there is no valid header.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.pc.Read(b)
	if err != nil && c.pc.ProxyHeader() == nil {
		c.pc.Close() // no header: nothing on this connection is served
	}
	return n, err
}

// RemoteAddr returns the client's address from the header, or the peer's
// when the header names none (LOCAL, UNKNOWN, a Unix socket), could not be
// read, or comes from a peer the listener does not trust.
func (c *Conn) RemoteAddr() net.Addr {
	c.once.Do(c.decide)
	return c.remote
}

// LocalAddr returns the socket's own address, as without the header.
func (c *Conn) LocalAddr() net.Addr { return c.peer.LocalAddr() }

func (c *Conn) decide() {
	c.remote = c.peer.RemoteAddr()
	h := c.pc.ProxyHeader() // reads the header, once
	if h == nil || h.Command.IsLocal() {
		return
	}
	var src netip.AddrPort
	switch a := h.SourceAddr.(type) {
	case *net.TCPAddr:
		src = a.AddrPort()
	case *net.UDPAddr:
		src = a.AddrPort()
	default: // a Unix socket: no address to use
		return
	}
	if src.IsValid() && c.trusts(c.remote) {
		c.remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src.Addr().Unmap(), src.Port()))
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

// ReadFrom lets a file reach the socket through sendfile, as it would
// without the wrapper.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	return c.pc.ReadFrom(r)
}

// wholeV1 is the connection below the library's reader. go-proxyproto
// drops a version 1 header that is not whole in its first read (against
// slow clients, which the header timeout bounds anyway), so a header split
// over two TCP segments would close the connection. The protocol lets a
// receiver be tolerant and this proxy always was: the first Read returns
// once a version 1 line is whole (or cannot be one). Not safe for
// concurrent Reads, as no net.Conn is for its first.
type wholeV1 struct {
	net.Conn
	started bool // the first Read has returned
}

// maxV1 is the longest version 1 header, CRLF included.
const maxV1 = 107

func (c *wholeV1) Read(p []byte) (int, error) {
	if c.started {
		return c.Conn.Read(p)
	}
	c.started = true
	n := 0
	for {
		m, err := c.Conn.Read(p[n:])
		n += m
		if err != nil || n == len(p) || !v1Pending(p[:n]) {
			return n, err
		}
	}
}

// v1Pending reports whether b is the start of a version 1 header whose
// line has not ended yet.
func v1Pending(b []byte) bool {
	const sig = "PROXY "
	if len(b) < len(sig) {
		return bytes.HasPrefix([]byte(sig), b)
	}
	return bytes.HasPrefix(b, []byte(sig)) && len(b) < maxV1 && bytes.IndexByte(b, '\n') < 0
}
