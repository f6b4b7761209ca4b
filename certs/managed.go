package certs

import (
	"crypto/tls"
	"slices"
	"strings"
)

// Managed is a source of certificates kept by someone else (an ACME
// client, certs/acme) for a fixed list of names.
type Managed interface {
	// Manages reports whether name (lower case, no trailing dot) is one
	// of its names.
	Manages(name string) bool
	// GetCertificate returns the certificate for the hello, or an error
	// while it has none yet. A hello offering ChallengeProto is the CA's
	// TLS-ALPN-01 validation.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// ChallengeProto is the ALPN protocol of ACME's TLS-ALPN-01 validation
// (RFC 8737).
const ChallengeProto = "acme-tls/1"

// managed is a Managed with the server configurations it is served under.
type managed struct {
	src       Managed
	config    *tls.Config // a managed name's handshakes
	challenge *tls.Config // a CA's TLS-ALPN-01 handshakes
}

// Manage serves src's certificates for its names, beside (and before) the
// set in service, which keeps every other name and those src has no
// certificate for yet. Clients must offer TLS minVersion or later.
func (st *Store) Manage(src Managed, minVersion uint16) {
	m := &managed{src: src}
	m.config = &tls.Config{
		MinVersion: minVersion,
		NextProtos: nextProtos,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := src.GetCertificate(h)
			if err == nil {
				return c, nil
			}
			// Not obtained yet: a configured certificate, if any, serves
			// meanwhile.
			if s := st.cur.Load(); s != nil {
				return s.pick(h.ServerName), nil
			}
			return nil, err
		},
	}
	m.challenge = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{ChallengeProto},
		GetCertificate: src.GetCertificate,
	}
	st.managed.Store(m)
}

// configFor returns the configuration of a hello src answers, or nil.
func (m *managed) configFor(h *tls.ClientHelloInfo, s *Set) *tls.Config {
	if slices.Contains(h.SupportedProtos, ChallengeProto) {
		return m.challenge
	}
	if m.src.Manages(strings.ToLower(strings.TrimSuffix(h.ServerName, "."))) {
		return m.config
	}
	if s == nil {
		// No configured certificates: a managed one is the only answer.
		return m.config
	}
	return nil
}
