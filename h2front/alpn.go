package h2front

import (
	"crypto/tls"
	"slices"
	"sync"
)

// OfferH2 returns a configuration that answers each handshake as base
// does (base.GetConfigForClient, which must be set, picks the certificates
// in service) and offers "h2" before "http/1.1" through ALPN. A
// configuration that does not offer "http/1.1" is handed out as it is: an
// ACME CA's TLS-ALPN-01 handshake must negotiate "acme-tls/1" and nothing
// else. Each configuration base hands out is cloned once and the clone
// kept, so a handshake costs no copy; base hands out a few (the
// configured set, ACME's), and a new one after each reload.
func OfferH2(base *tls.Config) *tls.Config {
	var clones sync.Map // *tls.Config -> *tls.Config
	return &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := base.GetConfigForClient(h)
			if err != nil || c == nil || !slices.Contains(c.NextProtos, "http/1.1") || slices.Contains(c.NextProtos, "h2") {
				return c, err
			}
			if to, ok := clones.Load(c); ok {
				return to.(*tls.Config), nil
			}
			to := c.Clone()
			to.NextProtos = append([]string{"h2"}, c.NextProtos...)
			actual, _ := clones.LoadOrStore(c, to)
			return actual.(*tls.Config), nil
		},
	}
}
