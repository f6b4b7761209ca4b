package main

import (
	"context"

	"sessionproxy/balancer"
	"sessionproxy/proxy"
)

// closeTunnels gives the open WebSocket tunnels until ctx is done (the
// rest of timeouts.shutdown) to end on their own, then closes them. The
// HTTP server's shutdown does not see them: they left it at the upgrade.
func (a *app) closeTunnels(ctx context.Context) {
	tunnels := a.current.Load().proxy.Tunnels
	n := tunnels.Active()
	if n == 0 {
		tunnels.Shutdown(ctx) // refuses handshakes still in flight
		return
	}
	a.logger.Info("waiting for open tunnels", "tunnels", n)
	if err := tunnels.Shutdown(ctx); err != nil {
		a.logger.Warn("tunnels still open at timeouts.shutdown were closed", "error", err)
	}
}

// carryConns makes each backend of rt count its requests and tunnels with
// the backend of the same upstream and URL in prev, the router it
// replaces: tunnels outlive a reload, and without this each reload would
// give every backend a fresh max_conns beside the tunnels still open.
func carryConns(rt, prev *proxy.Router) {
	if prev == nil {
		return
	}
	old := map[[2]string]*balancer.Backend{}
	for _, p := range prev.Upstreams {
		for _, b := range p.Pool.Backends {
			old[[2]string{p.Upstream, b.URL}] = b
		}
	}
	for _, p := range rt.Upstreams {
		for _, b := range p.Pool.Backends {
			if o := old[[2]string{p.Upstream, b.URL}]; o != nil {
				b.Adopt(o)
			}
		}
	}
}
