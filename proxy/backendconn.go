//go:build unix

package proxy

import (
	"net"
	"syscall"
	"time"
)

// idleCheckConn is a backend connection that carries no further request
// once the backend has written to it, or closed it, while it sat idle in
// the pool. HostClient has no such check: bytes a
// buggy backend writes between two requests would be read as the answer to
// the next request on the connection, another client's.
//
// A write that follows a read starts a new request on a connection that
// has carried one before; only then is the socket peeked, without
// blocking, and, when the transport asks (checkBeforeUse), only if the
// connection sat idle for idlePeekAfter or longer since its answer.
// fasthttp uses a connection from one goroutine at a time and hands it
// over through its pool's lock, so the fields need no lock of their own.
//
// Its deadlines are set lazily (lazyDeadline): a request asking for
// about the deadline the previous one set leaves the timer alone.
type idleCheckConn struct {
	*net.TCPConn // keeps SetKeepAlive, CloseWrite and the rest
	idleCheck
	rd, wd lazyDeadline
}

// idleCheckUnixConn is idleCheckConn over a Unix socket (unix: backends,
// which close idle connections as TCP ones do: gunicorn after 2s).
type idleCheckUnixConn struct {
	*net.UnixConn
	idleCheck
	rd, wd lazyDeadline
}

// idleCheck is the state of the check, for either kind of connection.
type idleCheck struct {
	raw      syscall.RawConn
	peekFn   func(fd uintptr) // c.peek, bound once: a method value made per check would allocate
	answered bool             // read since the last write: the next write starts a new request
	// answeredAt is when the transport read the last answer whole, zero
	// when it did not say: a connection back in the pool for less than
	// idlePeekAfter since then is not peeked.
	answeredAt time.Time
	peekErr    error
	peekBuf    [1]byte
}

// newIdleCheckConn wraps a TCP connection to a backend; other kinds of
// connection are returned as they are.
func newIdleCheckConn(c net.Conn) net.Conn {
	switch tc := c.(type) {
	case *net.TCPConn:
		raw, err := tc.SyscallConn()
		if err != nil {
			return c
		}
		ic := &idleCheckConn{TCPConn: tc, idleCheck: idleCheck{raw: raw}}
		ic.peekFn = ic.peek
		return ic
	case *net.UnixConn:
		raw, err := tc.SyscallConn()
		if err != nil {
			return c
		}
		ic := &idleCheckUnixConn{UnixConn: tc, idleCheck: idleCheck{raw: raw}}
		ic.peekFn = ic.peek
		return ic
	}
	return c
}

// idleCheckOf returns the check of a connection made by
// newIdleCheckConn, or nil.
func idleCheckOf(c net.Conn) *idleCheck {
	switch ic := c.(type) {
	case *idleCheckConn:
		return &ic.idleCheck
	case *idleCheckUnixConn:
		return &ic.idleCheck
	}
	return nil
}

// idlePeekAfter is how long a backend connection must have sat idle
// since its last answer before it is peeked again. The peek is a system
// call per request that finds nothing on a healthy connection
// (bench/README.md, "Plain-path levers"); what it looks for mostly comes
// late: a backend closing a connection at the end of its keep-alive
// timeout (seconds), or writing to it long after its answer. A
// connection taken again within this time of its answer is used
// unpeeked: a stray answer or a close within that window shows up as
// the next request's answer or error, as one arriving just after a
// peek always could.
const idlePeekAfter = 10 * time.Millisecond

// checkBeforeUse runs the check of c, if it has one, when it carried a
// request before, unless its answer was marked (answeredAt) less than
// idlePeekAfter ago: see staleBeforeUse.
func checkBeforeUse(c net.Conn) bool {
	ic := idleCheckOf(c)
	if ic == nil || !ic.answered {
		return false
	}
	ic.answered = false
	at := ic.answeredAt
	ic.answeredAt = time.Time{} // an answer not marked again is peeked after
	if !at.IsZero() && time.Since(at) < idlePeekAfter {
		return false
	}
	return ic.stale()
}

// answeredAt records that c's answer was read whole at now, as it goes
// back to the pool: see checkBeforeUse.
func answeredAt(c net.Conn, now time.Time) {
	if ic := idleCheckOf(c); ic != nil {
		ic.answeredAt = now
	}
}

// handshakeDone tells the idle check of c that the reads so far were a TLS
// handshake, not the answer to a request.
func handshakeDone(c net.Conn) {
	if ic := idleCheckOf(c); ic != nil {
		ic.answered = false
	}
}

// Read reads the backend's answer.
func (c *idleCheckConn) Read(b []byte) (int, error) {
	c.answered = true
	return c.TCPConn.Read(b)
}

// Write writes a request, and refuses to start one with errStaleConn on a
// connection the backend wrote to or closed while it was idle; nothing is
// written then, and HostClient closes the connection.
func (c *idleCheckConn) Write(b []byte) (int, error) {
	if c.answered {
		c.answered = false
		if c.stale() {
			return 0, errStaleConn
		}
	}
	return c.TCPConn.Write(b)
}

// Read reads the backend's answer.
func (c *idleCheckUnixConn) Read(b []byte) (int, error) {
	c.answered = true
	return c.UnixConn.Read(b)
}

// Write writes a request, as idleCheckConn's Write does.
func (c *idleCheckUnixConn) Write(b []byte) (int, error) {
	if c.answered {
		c.answered = false
		if c.stale() {
			return 0, errStaleConn
		}
	}
	return c.UnixConn.Write(b)
}

// SetReadDeadline sets the read deadline unless the one armed does
// (lazyDeadline).
func (c *idleCheckConn) SetReadDeadline(t time.Time) error {
	if t, ok := c.rd.next(t); ok {
		return c.rd.set(c.TCPConn.SetReadDeadline(t))
	}
	return nil
}

// SetWriteDeadline sets the write deadline unless the one armed does.
func (c *idleCheckConn) SetWriteDeadline(t time.Time) error {
	if t, ok := c.wd.next(t); ok {
		return c.wd.set(c.TCPConn.SetWriteDeadline(t))
	}
	return nil
}

// SetDeadline sets both deadlines, each unless the one armed does.
func (c *idleCheckConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline unless the one armed does.
func (c *idleCheckUnixConn) SetReadDeadline(t time.Time) error {
	if t, ok := c.rd.next(t); ok {
		return c.rd.set(c.UnixConn.SetReadDeadline(t))
	}
	return nil
}

// SetWriteDeadline sets the write deadline unless the one armed does.
func (c *idleCheckUnixConn) SetWriteDeadline(t time.Time) error {
	if t, ok := c.wd.next(t); ok {
		return c.wd.set(c.UnixConn.SetWriteDeadline(t))
	}
	return nil
}

// SetDeadline sets both deadlines, each unless the one armed does.
func (c *idleCheckUnixConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// stale reports whether the socket holds unread bytes, end of file or an
// error: anything but "nothing to read yet".
func (c *idleCheck) stale() bool {
	// Control, not RawConn.Read: Read gives up without calling peek once
	// the read deadline HostClient set for the previous answer has passed,
	// and Go's own Read with a deadline in the past makes no syscall.
	if err := c.raw.Control(c.peekFn); err != nil {
		return true
	}
	return c.peekErr != syscall.EAGAIN
}

// peek looks at the first unread byte without taking it off the socket:
// peekErr is nil for data or end of file, EAGAIN for nothing to read yet.
func (c *idleCheck) peek(fd uintptr) {
	for {
		_, _, c.peekErr = syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if c.peekErr != syscall.EINTR {
			return
		}
	}
}
