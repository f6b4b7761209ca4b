package h2front

import (
	"crypto/tls"
	"sync"
)

// OfferH2 returns a configuration that answers each handshake as base
// does (base.GetConfigForClient, which must be set, picks the certificates
// in service) and offers "h2" before "http/1.1" through ALPN. Each
// configuration base hands out is cloned once and the clone kept, so a
// handshake costs no copy; a new one (after a reload) replaces it.
func OfferH2(base *tls.Config) *tls.Config {
	var mu sync.Mutex
	var from, to *tls.Config
	return &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := base.GetConfigForClient(h)
			if err != nil || c == nil {
				return c, err
			}
			mu.Lock()
			defer mu.Unlock()
			if c != from {
				from, to = c, c.Clone()
				to.NextProtos = []string{"h2", "http/1.1"}
			}
			return to, nil
		},
	}
}
