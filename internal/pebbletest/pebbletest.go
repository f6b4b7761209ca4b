// Package pebbletest runs Pebble, Let's Encrypt's test CA, for the ACME
// tests: built from the tools module beside this file (so the product's
// go.mod does not require it), with pebble-challtestsrv as its DNS server
// answering 127.0.0.1 for every name, so that the CA validates against
// the proxy on this machine.
package pebbletest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
)

// Options configure a CA.
type Options struct {
	// HTTPPort and TLSPort are where the CA's validation connects for
	// HTTP-01 and TLS-ALPN-01 (the proxy's listen and listen_tls).
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates (default Pebble's,
	// 90 days).
	Validity time.Duration
}

// CA is a running Pebble.
type CA struct {
	Directory string // the ACME directory URL
	RootFile  string // the PEM root of the directory's own HTTPS certificate (tls.acme.ca_root)
	mgmt      string
	out       *apptest.Output
}

// Start builds and runs Pebble and its DNS server until the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	tools := filepath.Join(filepath.Dir(file), "tools")
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/",
		"github.com/letsencrypt/pebble/v2/cmd/pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv")
	build.Dir = tools
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building pebble: %v\n%s", err, out)
	}
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2")
	list.Dir = tools
	src, err := list.Output()
	if err != nil {
		t.Fatalf("locating pebble's source: %v", err)
	}
	certs := filepath.Join(strings.TrimSpace(string(src)), "test", "certs")

	addrs := apptest.FreeAddrs(t, 3) // ACME, management, DNS (UDP, on a free TCP port's number)
	ca := &CA{Directory: "https://" + addrs[0] + "/dir", RootFile: filepath.Join(certs, "pebble.minica.pem"), mgmt: addrs[1]}
	apptest.Run(t, "pebble-challtestsrv", nil, filepath.Join(bin, "pebble-challtestsrv"),
		"-dnsserver", addrs[2], "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "", "-management", "127.0.0.1:0")

	profile := map[string]any{"description": "test"}
	if o.Validity > 0 {
		profile["validityPeriod"] = int(o.Validity / time.Second)
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           addrs[0],
		"managementListenAddress": addrs[1],
		"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"profiles":                map[string]any{"default": profile},
	}}
	js, _ := json.Marshal(conf)
	confFile := filepath.Join(bin, "pebble.json")
	if err := os.WriteFile(confFile, js, 0o600); err != nil {
		t.Fatal(err)
	}
	ca.out = apptest.Run(t, "pebble", []string{
		"PEBBLE_VA_NOSLEEP=1",      // validate at once, not after up to 15s
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce retries: the tests time orders
		"PEBBLE_AUTHZREUSE=0",      // every order validates afresh, renewals too
	}, filepath.Join(bin, "pebble"), "-config", confFile, "-dnsserver", addrs[2])
	apptest.WaitListen(t, addrs[0], "pebble", 30*time.Second)
	// The management interface (Roots, Issued) is a listener of its own,
	// bound by its own goroutine: a test that asked for the roots at once
	// was refused once in CI.
	apptest.WaitListen(t, addrs[1], "pebble management", 30*time.Second)
	return ca
}

// Issued returns how many certificates the CA has issued, one per
// finalized order.
func (ca *CA) Issued() int { return strings.Count(ca.out.String(), "Issued certificate serial") }

// Orders returns how many orders the CA has been sent, finalized or not.
func (ca *CA) Orders() int { return strings.Count(ca.out.String(), "Added order ") }

// Log returns Pebble's output so far.
func (ca *CA) Log() string { return ca.out.String() }

// Roots returns the roots that the CA's issued certificates chain to
// (Pebble makes a new one each run).
func (ca *CA) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	mini, err := os.ReadFile(ca.RootFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(mini)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + ca.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pem, _ := io.ReadAll(resp.Body)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("pebble's root: %s", pem)
	}
	return roots
}
