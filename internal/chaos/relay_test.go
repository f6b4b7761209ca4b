//go:build chaos

package chaos

import (
	"io"
	"net"
	"sync"
	"testing"
)

// relay is a loopback TCP relay in front of one store node: proxies dial
// the relay, never the node, so the nemesis can partition them from it.
// A cut relay closes every connection it carries and holds new ones
// without answering (a blackhole, as a dropped link looks to the proxy:
// dials succeed, operations time out).
type relay struct {
	ln net.Listener

	mu     sync.Mutex
	target string // moveTo changes it, as a VIP or DNS move would
	cut    bool
	conns  map[net.Conn]struct{}
}

func startRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go r.serve()
	t.Cleanup(func() { ln.Close(); r.setCut(true) })
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cut {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// setCut cuts (true) or heals (false) the link.
func (r *relay) setCut(cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = cut
	// Either way every connection ends: cutting drops the live ones,
	// healing ends the held (blackholed) ones so the proxy dials anew.
	for c := range r.conns {
		c.Close()
	}
	r.conns = map[net.Conn]struct{}{}
}

// moveTo points the relay at target and ends every connection it
// carries, so that clients dial anew and reach the new target.
func (r *relay) moveTo(target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = target
	for c := range r.conns {
		c.Close()
	}
	r.conns = map[net.Conn]struct{}{}
}

func (r *relay) isCut() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cut
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.handle(c)
	}
}

func (r *relay) handle(c net.Conn) {
	if !r.track(c) {
		// Blackhole: hold the connection silently until the link heals
		// (then close it: the proxy dials again).
		r.mu.Lock()
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
			if !r.isCut() {
				break
			}
		}
		c.Close()
		r.untrack(c)
		return
	}
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	u, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		r.untrack(c)
		return
	}
	if !r.track(u) {
		c.Close()
		u.Close()
		r.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	r.untrack(c)
	r.untrack(u)
}
