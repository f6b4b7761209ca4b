package main

import (
	"sessionproxy/membudget"
	"sessionproxy/proxy"
)

// budget is the memory the running configuration accounts for.
func (a *app) budget() *membudget.Budget {
	c := a.current.Load().cfg
	// A request carries its session to the backend in its headers and the
	// backend's update back: two copies of a session at most.
	perRequest := 2 * int64(c.Session.MaxSize)
	if c.RequestBuffering {
		perRequest += proxy.MaxBufferedBody
	}
	return &membudget.Budget{
		HotTier:    int64(c.Session.LocalCache.Size),
		PerRequest: perRequest,
		Conns:      func() int { return int(a.server.GetOpenConnectionsCount()) },
	}
}
