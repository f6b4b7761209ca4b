package certs

import (
	"crypto/tls"
	"net"
	"testing"

	"sessionproxy/config"
	"sessionproxy/internal/rawtcp"
	"sessionproxy/internal/tlstest"
)

func load(t *testing.T, ca *tlstest.CA, dir string, names ...string) tls.Certificate {
	t.Helper()
	certFile, keyFile := ca.Leaf(t, dir, names...)
	c, err := config.LoadCertificate(config.Certificate{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake connects to ln with SNI name and returns the leaf's subject
// and the negotiated version.
func handshake(t *testing.T, addr, name string, ca *tlstest.CA, maxVersion uint16) (string, uint16, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: ca.Pool, MaxVersion: maxVersion, InsecureSkipVerify: name == ""})
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0].Subject.CommonName, st.Version, nil
}

// serve answers TLS handshakes with st's certificates on a loopback port.
func serve(t *testing.T, st *Store) string {
	t.Helper()
	tl := tls.NewListener(rawtcp.Listen(t), st.TLSConfig())
	return rawtcp.ServeOn(t, tl, func(c net.Conn) { c.(*tls.Conn).Handshake() }).Addr
}

func TestSNIPicksTheCertificate(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	site := load(t, ca, dir, "www.example.com", "example.com")
	api := load(t, ca, dir, "api.example.com")
	wild := load(t, ca, dir, "*.apps.example.com")
	set, err := NewSet([]tls.Certificate{site, api, wild}, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	var st Store
	st.Swap(set)
	addr := serve(t, &st)
	for name, want := range map[string]string{
		"www.example.com":    "www.example.com",
		"example.com":        "www.example.com",
		"API.example.com":    "api.example.com",
		"a.apps.example.com": "*.apps.example.com",
	} {
		got, _, err := handshake(t, addr, name, ca, 0)
		if err != nil || got != want {
			t.Errorf("SNI %s: %q %v, want %q", name, got, err, want)
		}
	}
	// No SNI, or a name no certificate carries: the first certificate.
	if got, _, err := handshake(t, addr, "", ca, 0); err != nil || got != "www.example.com" {
		t.Errorf("no SNI: %q %v", got, err)
	}
}

func TestMinVersionAndSwap(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	old := load(t, ca, dir, "old.example.com")
	set13, err := NewSet([]tls.Certificate{old}, tls.VersionTLS13)
	if err != nil {
		t.Fatal(err)
	}
	var st Store
	st.Swap(set13)
	addr := serve(t, &st)
	if _, _, err := handshake(t, addr, "old.example.com", ca, tls.VersionTLS12); err == nil {
		t.Error("TLS 1.2 accepted with min_version 1.3")
	}
	if _, v, err := handshake(t, addr, "old.example.com", ca, 0); err != nil || v != tls.VersionTLS13 {
		t.Errorf("TLS 1.3: %v %x", err, v)
	}
	fresh := load(t, ca, dir, "new.example.com")
	set12, err := NewSet([]tls.Certificate{fresh}, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	st.Swap(set12)
	if got, v, err := handshake(t, addr, "new.example.com", ca, tls.VersionTLS12); err != nil || got != "new.example.com" || v != tls.VersionTLS12 {
		t.Errorf("after swap: %q %x %v", got, v, err)
	}
}

func TestEmpty(t *testing.T) {
	if _, err := NewSet(nil, tls.VersionTLS12); err == nil {
		t.Error("a set of no certificates")
	}
	var st Store
	if _, err := st.TLSConfig().GetConfigForClient(&tls.ClientHelloInfo{}); err == nil {
		t.Error("a store with no set answered a handshake")
	}
}
