package certs

import (
	"crypto/tls"
	"errors"
	"sync/atomic"
	"testing"

	"sessionproxy/internal/tlstest"
)

// staticManaged manages names and has a certificate once ready is set;
// it stands in for an ACME client, which certs/acme tests against Pebble.
type staticManaged struct {
	names map[string]bool
	cert  tls.Certificate
	ready atomic.Bool
}

func (m *staticManaged) Manages(name string) bool { return m.names[name] }

func (m *staticManaged) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !m.ready.Load() {
		return nil, errors.New("not obtained yet")
	}
	return &m.cert, nil
}

// TestManagedBesideSet: a managed name gets the managed certificate once
// there is one and a configured one until then; other names keep the
// configured set; a store with only managed certificates serves them;
// acme-tls/1 is negotiated only for a hello that offers it.
func TestManagedBesideSet(t *testing.T) {
	ca := tlstest.NewCA(t)
	dir := t.TempDir()
	set, err := NewSet([]tls.Certificate{load(t, ca, dir, "www.example.com")}, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	m := &staticManaged{names: map[string]bool{"acme.example.com": true}, cert: load(t, ca, dir, "acme.example.com")}
	var st Store
	st.Swap(set)
	st.Manage(m, tls.VersionTLS12)
	addr := serve(t, &st)

	got, _, err := handshake(t, addr, "www.example.com", ca, 0)
	if err != nil || got != "www.example.com" {
		t.Errorf("configured name: %q %v", got, err)
	}
	if got, _, _ := handshakeInsecure(t, addr, "acme.example.com"); got != "www.example.com" {
		t.Errorf("managed name before its certificate: %q, want the configured default", got)
	}
	m.ready.Store(true)
	if got, _, err := handshake(t, addr, "ACME.example.com", ca, 0); err != nil || got != "acme.example.com" {
		t.Errorf("managed name: %q %v", got, err)
	}
	if got, _, err := handshake(t, addr, "www.example.com", ca, 0); err != nil || got != "www.example.com" {
		t.Errorf("configured name beside a managed one: %q %v", got, err)
	}

	var only Store
	only.Manage(m, tls.VersionTLS12)
	addr = serve(t, &only)
	if got, _, err := handshake(t, addr, "acme.example.com", ca, 0); err != nil || got != "acme.example.com" {
		t.Errorf("managed certificates only: %q %v", got, err)
	}
	for _, protos := range [][]string{{ChallengeProto}, {"http/1.1"}} {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "acme.example.com", RootCAs: ca.Pool, NextProtos: protos})
		if err != nil {
			t.Fatalf("ALPN %v: %v", protos, err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != protos[0] {
			t.Errorf("ALPN %v negotiated %q", protos, got)
		}
		c.Close()
	}
}

func handshakeInsecure(t *testing.T, addr, name string) (string, uint16, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, 0, nil
}
