// Package acme obtains and renews the certificates of tls.acme from an ACME
// CA (RFC 8555), keeps them in the state directory and answers the CA's
// HTTP-01 and TLS-ALPN-01 challenges on the proxy's own listeners.
//
// It is a thin layer over github.com/caddyserver/certmagic, chosen over
// golang.org/x/crypto/acme/autocert because the contract asks for what
// certmagic does and autocert does not: instances sharing one state_dir
// order a certificate once (certmagic's FileStorage takes a lock file per
// domain, <state_dir>/acme/locks, and re-reads storage once it holds it,
// where autocert's DirCache has no lock and every instance orders its
// own), a challenge started by one instance can be answered by another
// (the key authorization is kept in storage, "distributed solving"),
// certificates are obtained at start rather than on the first handshake
// (autocert waits for a client), and renewal runs on a ticker that
// tests can shorten (autocert's renewal has an hour of jitter). The cost is
// a few more modules (zap, acmez, libdns).
package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// ALPNProto is the protocol a CA offers in a TLS-ALPN-01 validation
// (RFC 8737); a listener that answers those must list it in NextProtos.
const ALPNProto = "acme-tls/1"

// challengePrefix is the path of HTTP-01 requests (RFC 8555 §8.3).
var challengePath = []byte("/.well-known/acme-challenge/")

// Options configure a Manager.
type Options struct {
	Email     string   // the account's contact
	Domains   []string // the names to get certificates for, one certificate each
	Directory string   // the CA's directory URL
	// CARoot, if set, is a PEM file of roots that the CA's own HTTPS
	// certificate is checked against instead of the system's (a private
	// CA, Pebble in the tests).
	CARoot string
	// StateDir keeps the account, keys, certificates and locks, under
	// StateDir/acme. Instances sharing it share the certificates.
	StateDir string
	// HTTPAddr and TLSAddr are the proxy's listen and listen_tls: the CA
	// connects to their ports (80 and 443 for a public CA), where the
	// proxy answers through ServeHTTPChallenge and GetCertificate.
	HTTPAddr, TLSAddr string
	// RenewCheck is how often the certificates' expiry is checked
	// (default certmagic's, 10 minutes); a certificate is renewed in the
	// last third of its lifetime, or in the window the CA suggests (ARI).
	RenewCheck time.Duration
	Logger     *slog.Logger // default slog.Default()
	// DisableHTTP01 and DisableTLSALPN01 leave a challenge type out, for
	// a listener the CA cannot reach (tests pin one type with them;
	// otherwise the client picks at random among those offered).
	DisableHTTP01, DisableTLSALPN01 bool
}

// Manager keeps the certificates of one tls.acme block. Safe for
// concurrent use by multiple goroutines.
type Manager struct {
	cfg     *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	cache   *certmagic.Cache
	names   map[string]bool
	opts    Options
	cancel  context.CancelFunc
	load    sync.Once // LoadStored
	loadErr error
	stop    sync.Once
}

// New prepares a Manager; Start begins obtaining certificates. It returns
// an error if the CA root cannot be read or the state directory cannot be
// created.
func New(o Options) (*Manager, error) {
	if len(o.Domains) == 0 {
		return nil, errors.New("acme: no domains")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	zl := newZapLogger(logger.With("component", "acme"))
	dir := filepath.Join(o.StateDir, "acme")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: state_dir: %w", err)
	}
	var roots *x509.CertPool
	if o.CARoot != "" {
		var err error
		if roots, err = LoadRoots(o.CARoot); err != nil {
			return nil, err
		}
	}
	m := &Manager{opts: o, names: map[string]bool{}}
	for _, d := range o.Domains {
		m.names[strings.ToLower(d)] = true
	}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		RenewCheckInterval: o.RenewCheck,
		Logger:             zl,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: dir},
		Logger:  zl,
		// A private CA (Pebble) has no OCSP responder, and stapling
		// is optional for a public one since Let's Encrypt ended OCSP.
		OCSP: certmagic.OCSPConfig{DisableStapling: true},
	})
	host, httpPort := splitPort(o.HTTPAddr)
	_, tlsPort := splitPort(o.TLSAddr)
	m.issuer = certmagic.NewACMEIssuer(m.cfg, certmagic.ACMEIssuer{
		CA:           o.Directory,
		Email:        o.Email,
		Agreed:       true,
		TrustedRoots: roots,
		// certmagic starts its own challenge listener on these ports
		// only if it can bind them; the proxy already listens there,
		// so the bind fails and the proxy's listeners answer.
		ListenHost:     host,
		AltHTTPPort:    httpPort,
		AltTLSALPNPort: tlsPort,
		Logger:         zl,

		DisableHTTPChallenge:    o.DisableHTTP01,
		DisableTLSALPNChallenge: o.DisableTLSALPN01,
	})
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// LoadRoots reads a PEM file of CA certificates.
func LoadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("acme: ca_root: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("acme: ca_root %s: no PEM certificate in it", file)
	}
	return pool, nil
}

func splitPort(addr string) (host string, port int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	port, _ = strconv.Atoi(p)
	return h, port
}

// LoadStored loads the certificates already in the state directory, so
// that a TLS listener serves them from its first handshake: call it
// before serving. Start calls it if it was not called.
func (m *Manager) LoadStored() error {
	m.load.Do(func() {
		for _, d := range m.opts.Domains {
			if _, err := m.cfg.CacheManagedCertificate(context.Background(), d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				m.loadErr = fmt.Errorf("acme: loading the stored certificate of %s: %w", d, err)
				return
			}
		}
	})
	return m.loadErr
}

// Start loads the certificates already in the state directory (unless
// LoadStored did) and, in the background, obtains those missing and
// renews those due, until Stop. Loading is done before it returns:
// certmagic's ManageAsync loads in the background too, and a handshake in
// between would get no certificate (or a configured one) from a proxy
// that has the right one on disk.
func (m *Manager) Start() error {
	if err := m.LoadStored(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	// Those loaded are managed now, and ManageAsync leaves them to the
	// maintenance ticker, whose first tick is RenewCheck away: renew the
	// ones already due now.
	go m.cache.RenewManagedCertificates(ctx)
	return m.cfg.ManageAsync(ctx, m.opts.Domains)
}

// Stop ends renewals and orders under way. Calling it again does nothing.
func (m *Manager) Stop() {
	m.stop.Do(func() {
		if m.cancel != nil {
			m.cancel()
		}
		m.cache.Stop()
	})
}

// Manages reports whether name is one of the domains; name is lower case
// without a trailing dot.
func (m *Manager) Manages(name string) bool { return m.names[name] }

// GetCertificate returns the certificate of the hello's server name, or a
// TLS-ALPN-01 challenge certificate when the CA asks for one.
func (m *Manager) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cfg.GetCertificate(h)
}

// ServeHTTPChallenge answers an HTTP-01 request whose token this manager,
// or another instance sharing its state directory, is waiting for, and
// reports whether it did. Any other request costs a prefix comparison.
func (m *Manager) ServeHTTPChallenge(ctx *fasthttp.RequestCtx) bool {
	if !bytes.HasPrefix(ctx.Path(), challengePath) {
		return false
	}
	var r http.Request
	if err := fasthttpadaptor.ConvertRequest(ctx, &r, true); err != nil {
		return false
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	if !m.issuer.HandleHTTPChallenge(w, &r) {
		return false
	}
	ctx.SetStatusCode(w.status)
	for k, vs := range w.header {
		for _, v := range vs {
			ctx.Response.Header.Add(k, v)
		}
	}
	ctx.SetBody(w.body)
	return true
}

// recorder is the http.ResponseWriter certmagic writes a key
// authorization into.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

func (w *recorder) Header() http.Header         { return w.header }
func (w *recorder) WriteHeader(code int)        { w.status = code }
func (w *recorder) Write(p []byte) (int, error) { w.body = append(w.body, p...); return len(p), nil }
