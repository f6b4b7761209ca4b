package proxy

import "time"

// lazyDeadline is one deadline (read or write) of a backend connection,
// set again only when the one armed no longer fits. Each request sets
// its deadlines afresh (time.Now() plus a timeout), and each setting
// moves a runtime timer under the poller's lock, a few per request
// (bench/README.md, "Plain-path levers"). Armed a sixteenth of its
// timeout later than asked, a deadline serves every later request that
// asks for one up to that much earlier: a timeout fires between the time
// asked for and a sixteenth of the timeout after it, never before.
type lazyDeadline struct {
	armed time.Time     // the deadline set on the connection; zero: none
	slack time.Duration // how much later than asked armed may be
}

// slackFraction of a timeout is how much later than asked a deadline may
// fire: a 30s response timeout fires within 31.9s.
const slackFraction = 16

// next returns the deadline to set on the connection for t, and false
// when the one armed does: no earlier than t, and at most the slack
// later. A zero t (no deadline) or an earlier one is set as asked.
func (d *lazyDeadline) next(t time.Time) (time.Time, bool) {
	if t.IsZero() {
		if d.armed.IsZero() {
			return t, false
		}
		*d = lazyDeadline{}
		return t, true
	}
	if !d.armed.IsZero() && !d.armed.Before(t) && d.armed.Sub(t) <= d.slack {
		return t, false
	}
	d.slack = 0
	if timeout := time.Until(t); timeout > 0 {
		d.slack = timeout / slackFraction
	}
	d.armed = t.Add(d.slack)
	return d.armed, true
}

// unknownDeadline stands for a deadline not known, earlier than any
// asked for: whatever is asked next is set.
var unknownDeadline = time.Unix(1, 0)

// set returns the error of setting the deadline next returned; after
// one, what the connection's deadline is is not known, and the next
// deadline is set whatever it is.
func (d *lazyDeadline) set(err error) error {
	if err != nil {
		*d = lazyDeadline{armed: unknownDeadline}
	}
	return err
}
