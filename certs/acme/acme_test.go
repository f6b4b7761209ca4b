package acme_test

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/certs"
	"sessionproxy/certs/acme"
	"sessionproxy/internal/apptest"
	"sessionproxy/internal/pebbletest"
	"sessionproxy/internal/testutil"
)

// front is the two listeners a CA validates against, as the proxy has
// them: plain HTTP answering HTTP-01 before anything else, TLS serving
// the certificates by SNI (and TLS-ALPN-01).
type front struct {
	httpAddr, tlsAddr string
	store             certs.Store
	http, tls         net.Listener
}

func newFront(t *testing.T) *front {
	t.Helper()
	addrs := apptest.FreeAddrs(t, 2)
	f := &front{httpAddr: addrs[0], tlsAddr: addrs[1]}
	var err error
	if f.http, err = net.Listen("tcp", f.httpAddr); err != nil {
		t.Fatal(err)
	}
	if f.tls, err = net.Listen("tcp", f.tlsAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.http.Close(); f.tls.Close() })
	return f
}

func port(t *testing.T, addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// serve answers on f's listeners with m: HTTP-01 first, then "route" for
// every other plain request; "tls" over TLS.
func (f *front) serve(m *acme.Manager) {
	f.store.Manage(m, tls.VersionTLS12)
	go fasthttp.Serve(f.http, func(ctx *fasthttp.RequestCtx) {
		if !m.ServeHTTPChallenge(ctx) {
			ctx.SetStatusCode(404)
			ctx.SetBodyString("route")
		}
	})
	go fasthttp.Serve(tls.NewListener(f.tls, f.store.TLSConfig()), func(ctx *fasthttp.RequestCtx) {
		ctx.SetBodyString("tls")
	})
}

func newManager(t *testing.T, ca *pebbletest.CA, f *front, dir string, o acme.Options) *acme.Manager {
	t.Helper()
	o.Email, o.Directory, o.CARoot, o.StateDir = "ops@example.com", ca.Directory, ca.RootFile, dir
	o.HTTPAddr, o.TLSAddr = f.httpAddr, f.tlsAddr
	if o.Domains == nil {
		o.Domains = []string{"a.test"}
	}
	o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, err := acme.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// served waits until addr presents, for name, a certificate that chains
// to roots, and returns it.
func served(t *testing.T, addr, name string, roots *x509.CertPool, timeout time.Duration) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	testutil.WaitFor(t, timeout, "a certificate for "+name+" from the CA", func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			return false
		}
		defer c.Close()
		leaf = c.ConnectionState().PeerCertificates[0]
		return true
	})
	return leaf
}

// TestObtainHTTP01: a certificate is obtained at start through HTTP-01
// answered on the plain listener, served by SNI, and an HTTP request
// under /.well-known/acme-challenge/ with a token nobody waits for falls
// through to the routes.
func TestObtainHTTP01(t *testing.T) {
	f := newFront(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, f.httpAddr), TLSPort: port(t, f.tlsAddr)})
	m := newManager(t, ca, f, t.TempDir(), acme.Options{DisableTLSALPN01: true})
	f.serve(m)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	leaf := served(t, f.tlsAddr, "a.test", ca.Roots(t), 60*time.Second)
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "a.test" {
		t.Fatalf("served %v", leaf.DNSNames)
	}
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued, want 1", n)
	}
	status, body, err := fasthttp.Get(nil, "http://"+f.httpAddr+"/.well-known/acme-challenge/unknown")
	if err != nil || status != 404 || string(body) != "route" {
		t.Fatalf("an unknown token: %d %q %v", status, body, err)
	}
}

// TestObtainTLSALPN01: with HTTP-01 left out, the CA validates through
// acme-tls/1 on the TLS listener, and nothing listens for plain HTTP.
func TestObtainTLSALPN01(t *testing.T) {
	f := newFront(t)
	f.http.Close() // the CA must not get in through HTTP-01
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, f.httpAddr), TLSPort: port(t, f.tlsAddr)})
	m := newManager(t, ca, f, t.TempDir(), acme.Options{DisableHTTP01: true})
	f.store.Manage(m, tls.VersionTLS12)
	go fasthttp.Serve(tls.NewListener(f.tls, f.store.TLSConfig()), func(ctx *fasthttp.RequestCtx) {})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	served(t, f.tlsAddr, "a.test", ca.Roots(t), 60*time.Second)
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued, want 1", n)
	}
}

// TestSharedStateDirOrdersOnce: two instances on one state_dir order
// each domain once (the lock file; with a state_dir each, this test sees
// four orders) and serve the same certificates. The CA reaches only the
// first one's listener; that it answers the second's challenges proves
// little here, as certmagic also keeps challenges in a process-wide map
// and both instances share this process.
func TestSharedStateDirOrdersOnce(t *testing.T) {
	f, g := newFront(t), newFront(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, f.httpAddr), TLSPort: port(t, f.tlsAddr)})
	dir := t.TempDir()
	domains := []string{"a.test", "b.test"}
	m1 := newManager(t, ca, f, dir, acme.Options{Domains: domains, DisableTLSALPN01: true})
	m2 := newManager(t, ca, g, dir, acme.Options{Domains: domains, DisableTLSALPN01: true})
	f.serve(m1)
	g.serve(m2)
	if err := m1.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	roots := ca.Roots(t)
	for _, name := range domains {
		a := served(t, f.tlsAddr, name, roots, 90*time.Second)
		b := served(t, g.tlsAddr, name, roots, 90*time.Second)
		if a.SerialNumber.Cmp(b.SerialNumber) != 0 {
			t.Errorf("%s: the instances serve different certificates (%v, %v)", name, a.SerialNumber, b.SerialNumber)
		}
	}
	if n, o := ca.Issued(), ca.Orders(); n != len(domains) || o != len(domains) {
		t.Fatalf("%d orders and %d certificates issued for %d domains", o, n, len(domains))
	}
}

// TestRestartReusesStoredCertificate: an instance started on the state_dir
// of one that stopped serves the stored certificate without an order.
func TestRestartReusesStoredCertificate(t *testing.T) {
	f := newFront(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, f.httpAddr), TLSPort: port(t, f.tlsAddr)})
	dir := t.TempDir()
	m := newManager(t, ca, f, dir, acme.Options{})
	f.serve(m)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	roots := ca.Roots(t)
	first := served(t, f.tlsAddr, "a.test", roots, 60*time.Second)
	m.Stop()
	f.http.Close()
	f.tls.Close()

	f2 := newFront(t)
	m2 := newManager(t, ca, f2, dir, acme.Options{})
	f2.serve(m2)
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	// At once: the stored certificate is loaded before Start returns.
	pc, _ := net.Pipe() // certmagic logs a miss with the hello's connection
	defer pc.Close()
	if _, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test", Conn: pc}); err != nil {
		t.Fatalf("right after Start: %v", err)
	}
	c, err := tls.Dial("tcp", f2.tlsAddr, &tls.Config{ServerName: "a.test", RootCAs: roots})
	if err != nil {
		t.Fatalf("right after the restart: %v", err)
	}
	again := c.ConnectionState().PeerCertificates[0]
	c.Close()
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("after the restart serial %v, before %v", again.SerialNumber, first.SerialNumber)
	}
	time.Sleep(2 * time.Second) // an order started in the background would be issued by now
	if n := ca.Issued(); n != 1 {
		t.Fatalf("%d certificates issued, want 1 (the restart ordered)", n)
	}
}

// TestRenewal: a certificate in the last third of its life is replaced in
// the background, through a fresh validation (PEBBLE_AUTHZREUSE=0), and
// the new one is served without a restart.
func TestRenewal(t *testing.T) {
	f := newFront(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, f.httpAddr), TLSPort: port(t, f.tlsAddr), Validity: 30 * time.Second})
	m := newManager(t, ca, f, t.TempDir(), acme.Options{RenewCheck: time.Second, DisableTLSALPN01: true})
	f.serve(m)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	roots := ca.Roots(t)
	first := served(t, f.tlsAddr, "a.test", roots, 60*time.Second)
	testutil.WaitFor(t, 60*time.Second, "a renewed certificate", func() bool {
		c := served(t, f.tlsAddr, "a.test", roots, 10*time.Second)
		if c.SerialNumber.Cmp(first.SerialNumber) == 0 {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		return true
	})
	if n := ca.Issued(); n < 2 {
		t.Fatalf("%d certificates issued", n)
	}
}
