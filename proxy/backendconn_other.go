//go:build !unix

package proxy

import (
	"net"
	"time"
)

// newIdleCheckConn returns c as it is: the check for bytes a backend wrote
// to an idle connection peeks with MSG_PEEK|MSG_DONTWAIT, a unix call.
func newIdleCheckConn(c net.Conn) net.Conn { return c }

// handshakeDone has no idle check to tell.
func handshakeDone(net.Conn) {}

// checkBeforeUse has no idle check to run.
func checkBeforeUse(net.Conn) bool { return false }

// answeredAt has no idle check to tell.
func answeredAt(net.Conn, time.Time) {}
