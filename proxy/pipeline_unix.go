//go:build unix

package proxy

import "net"

// staleIdle reports whether c, a connection wrapped by newIdleCheckConn
// and idle now, holds bytes or an end of file nobody asked for.
func staleIdle(c net.Conn) bool {
	ic := idleCheckOf(c)
	return ic != nil && ic.stale()
}
