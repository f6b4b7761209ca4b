package proxy

import (
	"testing"
	"time"
)

// TestLazyDeadline: a deadline is set again only when the one armed does
// not fit, and a timeout never fires before the time asked for nor later
// than a sixteenth of the timeout after it.
func TestLazyDeadline(t *testing.T) {
	var d lazyDeadline
	if _, set := d.next(time.Time{}); set {
		t.Fatal("no deadline asked on a connection with none: set")
	}
	now := time.Now()
	armed, set := d.next(now.Add(16 * time.Second))
	if !set || armed.Before(now.Add(16*time.Second)) || armed.After(now.Add(17*time.Second)) {
		t.Fatalf("first deadline: set %v at %v, want %v plus at most 1s", set, armed.Sub(now), 16*time.Second)
	}
	// The next request, a little later, asks for the same timeout.
	if _, set := d.next(now.Add(500*time.Millisecond + 16*time.Second)); set {
		t.Fatal("a deadline the armed one covers was set again")
	}
	// Past the slack: the armed one would fire early.
	if _, set := d.next(now.Add(1500*time.Millisecond + 16*time.Second)); !set {
		t.Fatal("a deadline later than the armed one was not set: the timeout would fire early")
	}
	// A shorter timeout is set as asked (its own slack added).
	short := time.Now().Add(time.Second)
	if armed, set := d.next(short); !set || armed.Before(short) || armed.After(short.Add(time.Second/16)) {
		t.Fatalf("a shorter timeout: set %v at %v after asked", set, armed.Sub(short))
	}
	// A deadline in the past (to interrupt a read) is set.
	if _, set := d.next(time.Unix(1, 0)); !set {
		t.Fatal("a deadline in the past was not set")
	}
	if _, set := d.next(time.Time{}); !set {
		t.Fatal("no deadline after one: not cleared")
	}
	d.set(errStaleConn) // an error setting it: the deadline is not known
	if _, set := d.next(time.Time{}); !set {
		t.Fatal("no deadline after a failed setting: not cleared")
	}
}
