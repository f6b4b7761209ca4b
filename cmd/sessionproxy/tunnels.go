package main

import "context"

// closeTunnels gives the open WebSocket tunnels until ctx is done (the
// rest of timeouts.shutdown) to end on their own, then closes them. The
// HTTP server's shutdown does not see them: they left it at the upgrade.
func (a *app) closeTunnels(ctx context.Context) {
	tunnels := a.current.Load().proxy.Metrics.Tunnels()
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
