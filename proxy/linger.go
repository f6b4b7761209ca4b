package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// LingerListener is a net.Listener whose connections close the way nginx's
// lingering close does: when the server closes a client connection, its
// answer goes out with a FIN, and whatever the client is still sending is
// read and thrown away until the client closes too, stays silent for Idle,
// or Timeout has passed in all. Closing a socket that still has unread
// data resets it, and the reset destroys an answer the client had not read
// yet: a client uploading 2 MiB against a 1 MiB max_body saw a reset
// instead of its 413.
//
// Only connections closed by the goroutine that serves them linger. One
// closed while another goroutine is reading it, as Server.Shutdown closes
// idle keep-alive connections, owes the client nothing and is closed at
// once, which also wakes its reader.
//
// Set the fields before Accept is first called. Safe for concurrent use by
// multiple goroutines.
type LingerListener struct {
	net.Listener

	// Timeout bounds the whole lingering close (default 30s, nginx's
	// lingering_time).
	Timeout time.Duration

	// Idle ends it once the client has sent nothing for this long
	// (default 5s, nginx's lingering_timeout).
	Idle time.Duration
}

// NewLingerListener returns ln with lingering close and the default
// timings.
func NewLingerListener(ln net.Listener) *LingerListener {
	return &LingerListener{Listener: ln}
}

// Accept waits for the next connection. TCP connections close with
// lingering; others are returned as they are.
func (l *LingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return &lingerConn{TCPConn: tc, l: l}, nil
}

func (l *LingerListener) timings() (total, idle time.Duration) {
	total, idle = l.Timeout, l.Idle
	if total <= 0 {
		total = 30 * time.Second
	}
	if idle <= 0 {
		idle = 5 * time.Second
	}
	return total, idle
}

// lingerConn is a client connection of a LingerListener. It embeds the
// *net.TCPConn so that fasthttp still finds SetKeepAlive on it.
type lingerConn struct {
	*net.TCPConn
	l       *LingerListener
	reading atomic.Bool // a Read is in progress
	closed  atomic.Bool
}

// Read reads from the client, noting that a read is in progress.
func (c *lingerConn) Read(b []byte) (int, error) {
	c.reading.Store(true)
	n, err := c.TCPConn.Read(b)
	c.reading.Store(false)
	return n, err
}

// Close sends a FIN after what was written and drains the client in the
// background before closing; see LingerListener. Only the first call
// does anything.
func (c *lingerConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	if c.reading.Load() {
		return c.TCPConn.Close()
	}
	if err := c.TCPConn.CloseWrite(); err != nil {
		return c.TCPConn.Close()
	}
	go c.linger()
	return nil
}

var lingerBufs = sync.Pool{New: func() any { return new([4096]byte) }}

func (c *lingerConn) linger() {
	total, idle := c.l.timings()
	end := time.Now().Add(total)
	buf := lingerBufs.Get().(*[4096]byte)
	for {
		deadline := time.Now().Add(idle)
		if deadline.After(end) {
			deadline = end
		}
		if c.TCPConn.SetReadDeadline(deadline) != nil {
			break
		}
		if _, err := c.TCPConn.Read(buf[:]); err != nil {
			break // EOF: the client is done; a timeout: it is not, and waited enough
		}
	}
	lingerBufs.Put(buf)
	c.TCPConn.Close()
}
