// Package certs holds the TLS certificates of a listener and picks one per
// connection by SNI; the set is swapped whole on reload.
package certs

import (
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
)

// nextProtos are the ALPN protocols of the listener, for configured and
// managed certificates alike.
var nextProtos = []string{"http/1.1"}

// Set is one loaded group of certificates.
type Set struct {
	byName   map[string]*tls.Certificate // exact DNS names, lower case
	wildcard map[string]*tls.Certificate // "*.example.com" by "example.com"
	first    *tls.Certificate
	config   *tls.Config // served to clients while this set is in service
}

// NewSet indexes certificates by the DNS names of their leaves; the first
// one is the default for names no certificate carries, and for a client
// that sends no SNI. Each certificate's Leaf must be set. Clients must offer
// TLS minVersion or later.
func NewSet(certs []tls.Certificate, minVersion uint16) (*Set, error) {
	if len(certs) == 0 {
		return nil, errors.New("certs: no certificates")
	}
	s := &Set{byName: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}}
	for i := range certs {
		c := &certs[i]
		if c.Leaf == nil {
			return nil, errors.New("certs: certificate without its parsed leaf")
		}
		if s.first == nil {
			s.first = c
		}
		for _, n := range c.Leaf.DNSNames {
			n = strings.ToLower(n)
			// An earlier certificate keeps a name it shares with a later one.
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := s.wildcard[rest]; !dup {
					s.wildcard[rest] = c
				}
			} else if _, dup := s.byName[n]; !dup {
				s.byName[n] = c
			}
		}
	}
	s.config = &tls.Config{
		MinVersion:     minVersion,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return s.pick(h.ServerName), nil },
		NextProtos:     nextProtos,
	}
	return s, nil
}

// pick returns the certificate for a server name.
func (s *Set) pick(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c, ok := s.byName[name]; ok {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := s.wildcard[parent]; ok {
			return c
		}
	}
	return s.first
}

// Store is the certificate set in service, and the certificates an ACME
// client manages beside it. Its zero value holds none; Swap one in (or
// Manage) before serving. Safe for concurrent use by multiple goroutines.
type Store struct {
	cur     atomic.Pointer[Set]
	managed atomic.Pointer[managed]
}

// Swap puts s in service; handshakes already started keep the old set.
func (st *Store) Swap(s *Set) { st.cur.Store(s) }

// TLSConfig returns a server configuration that follows the set in
// service: each handshake takes the certificates and minimum version of
// the set current when it starts.
func (st *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			s := st.cur.Load()
			if m := st.managed.Load(); m != nil {
				if c := m.configFor(h, s); c != nil {
					return c, nil
				}
			}
			if s == nil {
				return nil, errors.New("certs: no certificates loaded")
			}
			return s.config, nil
		},
	}
}
