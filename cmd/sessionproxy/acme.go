package main

import (
	"reflect"

	"github.com/valyala/fasthttp"

	"sessionproxy/certs/acme"
	"sessionproxy/config"
)

// newACME makes the manager of tls.acme, or nil without one, and puts its
// certificates beside the configured ones. It does not order yet:
// startACME does, once the listeners that answer the CA are open.
func (a *app) newACME(c *config.Config) error {
	if c.TLS.ACME == nil {
		return nil
	}
	dir, err := c.StateDirPath()
	if err != nil {
		return err
	}
	m, err := acme.New(acme.Options{
		Email:      c.TLS.ACME.Email,
		Domains:    c.TLS.ACME.Domains,
		Directory:  c.TLS.ACME.DirectoryURL(),
		CARoot:     c.TLS.ACME.CARoot,
		StateDir:   dir,
		HTTPAddr:   c.Listen,
		TLSAddr:    c.ListenTLS,
		RenewCheck: acmeRenewCheck,
		Logger:     a.logger,
	})
	if err != nil {
		return err
	}
	a.acme = m
	a.certs.Manage(m, config.TLSVersion(c.TLS.MinVersion))
	return nil
}

// loadACME loads the stored certificates of tls.acme, if any; an error is
// left to startACME, which meets it again.
func (a *app) loadACME() {
	if a.acme != nil {
		a.acme.LoadStored()
	}
}

// startACME loads the stored certificates and starts obtaining and
// renewing in the background.
func (a *app) startACME() {
	if a.acme == nil {
		return
	}
	if err := a.acme.Start(); err != nil {
		a.logger.Error("tls.acme: cannot manage the certificates", "error", err)
	}
}

// withACME answers the CA's HTTP-01 requests before anything else sees
// them: routes, sessions and redirect_to_https.
func (a *app) withACME(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	if a.acme == nil {
		return next
	}
	return func(ctx *fasthttp.RequestCtx) {
		if !a.acme.ServeHTTPChallenge(ctx) {
			next(ctx)
		}
	}
}

// warnACMEReload logs that a reload does not apply a changed tls.acme:
// the manager, its orders and renewals belong to the process.
func (a *app) warnACMEReload(c *config.Config) {
	if !reflect.DeepEqual(a.cfg.TLS.ACME, c.TLS.ACME) {
		a.logger.Warn("tls.acme changed: it is read at start, restart to apply it; the running one is kept")
	}
}
