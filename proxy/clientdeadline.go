package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// readDeadline is the read deadline of a client connection, set on the
// socket only when the one armed would fire too late. fasthttp's server
// asks for two a request, alternating client_idle (before the first
// byte) and client_read (after it), and each setting moves a runtime
// timer under the poller's lock: a lazy rule as the backend side's
// (lazyDeadline) cannot skip a deadline that alternates between two
// timeouts. This one lets the armed deadline be earlier than asked: a
// read it interrupts before the deadline asked for is started again with
// that deadline armed (retry), so the connection's timeouts fire as
// asked (up to a sixteenth of the timeout later, as lazyDeadline's) and
// the socket's deadline is set about once per client_read instead of
// twice a request. Safe for concurrent use: Server.Shutdown and a
// tunnel may set deadlines from another goroutine than the reader's.
type readDeadline struct {
	mu    sync.Mutex
	want  time.Time // the deadline asked for; zero: none
	armed time.Time // the one set on the socket; zero: none
	sets  int       // socket settings, for tests
}

// set records t as the deadline asked for and sets it on c when the one
// armed would fire later than t allows, or when t is none.
func (d *readDeadline) set(c *net.TCPConn, t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = t
	// Armed no later than allowed (if sooner, retry re-arms); the slack,
	// a clock reading, only when armed is later than t.
	if !d.armed.IsZero() && !t.IsZero() && (!d.armed.After(t) || !d.armed.After(t.Add(slackOf(t)))) {
		return nil
	}
	return d.arm(c, t)
}

// arm sets t (plus its slack) on the socket; d.mu is held.
func (d *readDeadline) arm(c *net.TCPConn, t time.Time) error {
	if !t.IsZero() {
		t = t.Add(slackOf(t))
	}
	d.sets++
	if err := c.SetReadDeadline(t); err != nil {
		d.armed = time.Time{} // not known: the next deadline asked is set
		return err
	}
	d.armed = t
	return nil
}

// retry reports whether err is the armed deadline firing before the one
// asked for, and if so arms that one so that the read can start again.
func (d *readDeadline) retry(c *net.TCPConn, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.want.IsZero() && !time.Now().Before(d.want) {
		return false // the deadline asked for has passed: a real timeout
	}
	return d.arm(c, d.want) == nil
}

// slackOf is how much later than t a deadline may fire: a sixteenth of
// the time until t, as lazyDeadline allows.
func slackOf(t time.Time) time.Duration {
	if timeout := time.Until(t); timeout > 0 {
		return timeout / slackFraction
	}
	return 0
}
