//go:build !unix

package proxy

import "net"

// staleIdle has no peek to make off unix: see newIdleCheckConn.
func staleIdle(net.Conn) bool { return false }
