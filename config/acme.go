package config

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// ACME is tls.acme: certificates obtained and renewed from an ACME CA
// (certs/acme), kept in state_dir.
type ACME struct {
	Email   string   `yaml:"email"`   // the account's contact (required)
	Domains []string `yaml:"domains"` // one certificate per name (required)
	// Directory is the CA's directory URL (default Let's Encrypt's,
	// ACMEDirectoryDefault).
	Directory string `yaml:"directory"`
	// CARoot is a PEM file of roots for the CA's own HTTPS certificate,
	// for a private CA (default: the system's roots).
	CARoot string `yaml:"ca_root"`
}

// ACMEDirectoryDefault is Let's Encrypt's production directory.
const ACMEDirectoryDefault = "https://acme-v02.api.letsencrypt.org/directory"

// DirectoryURL returns directory, or its default.
func (a *ACME) DirectoryURL() string {
	if a.Directory == "" {
		return ACMEDirectoryDefault
	}
	return a.Directory
}

func (v *validator) acme() {
	a := v.c.TLS.ACME
	if a == nil {
		return
	}
	const p = "tls.acme"
	if v.c.ListenTLS == "" {
		v.errf(p, "tls.acme needs listen_tls: the certificates are served there")
	}
	if a.Email == "" {
		v.errf(p, "tls.acme.email is required: the CA writes there about expiring certificates and account problems")
	} else if !strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n,") {
		v.errf(p+".email", "tls.acme.email: %q is not an e-mail address", a.Email)
	}
	if len(a.Domains) == 0 {
		v.errf(p, "tls.acme.domains is required: at least one DNS name")
	}
	for i, d := range a.Domains {
		if msg := badDomain(d); msg != "" {
			v.errf(fmt.Sprintf("%s.domains[%d]", p, i), "tls.acme.domains[%d]: %q %s", i, d, msg)
		}
	}
	if a.Directory != "" {
		u, err := url.Parse(a.Directory)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			v.errf(p+".directory", "tls.acme.directory: %q is not an http(s) URL", a.Directory)
		}
	}
	if a.CARoot != "" {
		pem, err := os.ReadFile(a.CARoot)
		if err != nil {
			v.errf(p+".ca_root", "tls.acme.ca_root: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.errf(p+".ca_root", "tls.acme.ca_root: %s holds no PEM certificate", a.CARoot)
		}
	}
	if _, err := v.c.StateDirPath(); err != nil {
		v.errf(p, "tls.acme keeps its certificates in state_dir: %v", err)
	}
}

// badDomain says what is wrong with an ACME domain name, or "".
func badDomain(d string) string {
	switch {
	case d == "":
		return "is empty"
	case strings.HasPrefix(d, "*."):
		return "is a wildcard: HTTP-01 and TLS-ALPN-01 cannot validate one (it needs DNS-01)"
	case strings.Contains(d, ":"), strings.Trim(d, "0123456789.") == "":
		return "is an IP address, not a DNS name"
	case len(d) > 253 || strings.ContainsFunc(d, func(r rune) bool {
		return !(r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}):
		return "is not a DNS name"
	}
	return ""
}
