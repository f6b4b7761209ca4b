package proxy

import (
	"math/bits"
	"strings"
)

// routeIndex narrows a Router's table to the routes that may match a
// request before any of them is tried: a table of fifty routes costs a
// few of them. Each route's full test still decides, in table order, so
// the first match is the one a walk of the whole table finds.
//
// Two things are known of a route at load: the second byte of the path
// it can match (the one after "/", from its Path or its regex's literal
// prefix), and the exact host it needs. A request's second path byte and
// host pick bit sets of candidates.
type routeIndex struct {
	words int
	// second[c] holds the routes that may match a path whose byte 1 is c.
	second [256][]uint64
	// anyHost holds the routes without an exact host (none, or a
	// wildcard); byHost those of each exact host.
	anyHost []uint64
	byHost  map[string][]uint64
}

// BuildIndex prepares the Router's table for fast matching. Call it once
// the Routes are set, before the first request; a Router without an
// index walks the whole table, with the same result.
func (rt *Router) BuildIndex() {
	n := len(rt.Routes)
	x := &routeIndex{words: (n + 63) / 64, byHost: map[string][]uint64{}}
	set := func(m []uint64, i int) { m[i/64] |= 1 << (i % 64) }
	for c := range x.second {
		x.second[c] = make([]uint64, x.words)
	}
	x.anyHost = make([]uint64, x.words)
	for i := range rt.Routes {
		r := &rt.Routes[i]
		if needs, ok := r.secondByte(); ok {
			for _, c := range needs {
				set(x.second[c], i)
			}
		} else {
			for c := range x.second {
				set(x.second[c], i)
			}
		}
		if r.Host == "" || strings.HasPrefix(r.Host, "*.") {
			set(x.anyHost, i)
			continue
		}
		h := strings.ToLower(r.Host)
		if x.byHost[h] == nil {
			x.byHost[h] = make([]uint64, x.words)
		}
		set(x.byHost[h], i)
	}
	rt.index = x
}

// secondByte returns the bytes one of which a path's byte 1 must be for
// r to match it, or false when any will do.
func (r *Route) secondByte() ([]byte, bool) {
	p := r.Path
	fold := false
	if r.Regex != nil {
		p, fold = r.Regex.Prefix()
	}
	if len(p) < 2 || p[1] == '%' || p[1] == '/' {
		// "%" and "/" in a route stand for what %25 and %2F in a
		// request stand for too: no filter on them.
		return nil, false
	}
	c := p[1]
	if fold && 'a' <= c|0x20 && c|0x20 <= 'z' {
		return []byte{c | 0x20, c &^ 0x20}, true
	}
	return []byte{c}, true
}

// maxIndexedHost bounds the host the index looks up (lower-cased on the
// stack); a longer one is matched without the host filter.
const maxIndexedHost = 128

// first returns the first route of routes (the table x was built from)
// that matches host (matchHost'd) and path, with the bytes of path its
// Path covers, trying only the candidates.
func (x *routeIndex) first(routes []Route, host, path []byte) (i, n int, ok bool) {
	var second []uint64
	if len(path) >= 2 && path[1] != '%' && path[1] != '/' {
		second = x.second[path[1]]
	}
	var hosts []uint64
	filterHost := len(host) <= maxIndexedHost
	if filterHost {
		var buf [maxIndexedHost]byte
		lower := buf[:len(host)]
		for i, c := range host {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i] = c
		}
		hosts = x.byHost[string(lower)]
	}
	for w := 0; w < x.words; w++ {
		m := ^uint64(0)
		if second != nil {
			m = second[w]
		}
		if filterHost {
			h := x.anyHost[w]
			if hosts != nil {
				h |= hosts[w]
			}
			m &= h
		}
		for m != 0 {
			b := bits.TrailingZeros64(m)
			i = w*64 + b
			if i >= len(routes) {
				return 0, 0, false
			}
			if n, ok = routes[i].matchHost(host, path); ok {
				return i, n, true
			}
			m &^= 1 << b
		}
	}
	return 0, 0, false
}
