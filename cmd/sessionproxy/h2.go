package main

import (
	"context"
	"crypto/tls"

	"sessionproxy/h2front"
)

// serveTLS serves listen_tls: HTTP/1.1 by the fasthttp server, and with
// http2 (the default) HTTP/2 by h2front, which hands every stream to the
// same fasthttp server. Serving errors go to serveErr.
func (a *app) serveTLS(serveErr chan<- error) {
	cfg := a.certs.TLSConfig()
	if !a.cfg.HTTP2 {
		ln := tls.NewListener(a.wrap(a.tlsLn), cfg)
		go func() { serveErr <- a.server.Serve(ln) }()
		return
	}
	a.h2 = h2front.New(tls.NewListener(a.wrap(a.tlsLn), h2front.OfferH2(cfg)), h2front.Options{
		HandshakeTimeout: a.cfg.Timeouts.ClientRead.Std(),
		IdleTimeout:      a.cfg.Timeouts.ClientIdle.Std(),
		Logger:           a.logger,
	})
	go func() { serveErr <- a.server.Serve(a.h2.Listener()) }()
	go func() {
		if err := a.h2.Serve(); err != nil {
			serveErr <- err
		}
	}()
}

// shutdownH2 sends GOAWAY to the HTTP/2 clients and lets their streams
// finish until ctx is done, beside the fasthttp server's own drain (the
// streams still running are that server's in-memory connections); the
// channel closes when it is done.
func (a *app) shutdownH2(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if a.h2 == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		a.h2.Shutdown(ctx) //nolint:errcheck // the deadline is the grace period's
	}()
	return done
}
