package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// TLS configures the HTTPS listener.
type TLS struct {
	// Certificates are chosen by SNI from each certificate's DNS names;
	// the first is the default for names none of them carries.
	Certificates []Certificate `yaml:"certificates"`
	MinVersion   string        `yaml:"min_version"` // 1.2 | 1.3 (default 1.2)
	// ACME, if set, gets certificates from an ACME CA (acme.go).
	ACME *ACME `yaml:"acme"`
}

// Certificate is one PEM certificate chain and its private key.
type Certificate struct {
	Cert string `yaml:"cert"` // PEM file: the certificate, then its intermediates
	Key  string `yaml:"key"`  // PEM file: the private key
}

// TLSVersion returns the crypto/tls constant of a min_version value.
func TLSVersion(s string) uint16 {
	if s == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// LoadCertificate reads a certificate and its key and checks that they
// belong together.
func LoadCertificate(c Certificate) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cert %q, key %q: %w", c.Cert, c.Key, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("cert %q: %w", c.Cert, err)
		}
	}
	return pair, nil
}

func (v *validator) tls() {
	c := v.c
	v.addr("listen_tls", c.ListenTLS, true)
	v.oneOf("tls.min_version", c.TLS.MinVersion, "1.2", "1.3")
	if c.ListenTLS != "" && len(c.TLS.Certificates) == 0 && c.TLS.ACME == nil {
		v.errf("listen_tls", "listen_tls needs tls.certificates (at least one {cert, key} pair) or tls.acme")
	}
	if c.RedirectToHTTPS && c.ListenTLS == "" {
		v.errf("redirect_to_https", "redirect_to_https needs listen_tls: the port to redirect to")
	}
	v.acme()
	for i, cert := range c.TLS.Certificates {
		p := fmt.Sprintf("tls.certificates[%d]", i)
		if cert.Cert == "" || cert.Key == "" {
			v.errf(p, "%s: both cert and key are required", p)
			continue
		}
		if _, err := LoadCertificate(cert); err != nil {
			v.errf(p, "%s: %v", p, err)
		}
	}
}
