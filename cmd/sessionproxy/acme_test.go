package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/pebbletest"
	"sessionproxy/internal/testutil"
)

// acmeProxy runs the binary on a config file written once, so that a
// restart reads the same one.
type acmeProxy struct {
	cmd *exec.Cmd
	out *apptest.Output
}

func startACMEProxy(t *testing.T, conf, listen string, env ...string) *acmeProxy {
	t.Helper()
	p := &acmeProxy{out: &apptest.Output{}}
	p.cmd = exec.Command(binary, "run", "-config", conf)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("sessionproxy output:\n%s", p.out.String())
		}
	})
	apptest.WaitListen(t, listen, "sessionproxy", 10*time.Second)
	return p
}

func (p *acmeProxy) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("sessionproxy exited: %v\n%s", err, p.out.String())
	}
}

// httpsGet sends GET / for name to the TLS listener at addr, checking
// the certificate against roots, and returns the answer's body and the
// certificate.
func httpsGet(addr, name string, roots *x509.CertPool) (string, *x509.Certificate, error) {
	var leaf *x509.Certificate
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, VerifyConnection: func(cs tls.ConnectionState) error {
			leaf = cs.PeerCertificates[0]
			return nil
		}},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + name + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), leaf, err
}

// firstServedName dials addr until it accepts (its backlog does once the
// listener is open, before anything serves it), handshakes as name and
// returns the first DNS name of the certificate served, or the error.
func firstServedName(addr, name string) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			if time.Now().After(deadline) {
				return err.Error()
			}
			time.Sleep(time.Millisecond)
			continue
		}
		c := tls.Client(raw, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(10 * time.Second))
		err = c.Handshake()
		c.Close()
		if err != nil {
			return err.Error()
		}
		return c.ConnectionState().PeerCertificates[0].DNSNames[0]
	}
}

func portOf(t *testing.T, addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestACMEEndToEnd: the proxy with tls.acme and no tls.certificates
// obtains a certificate from Pebble at start, serves it by SNI on
// listen_tls beside a configured one (which keeps the other names), and
// a request over it reaches the backend; a restart on the same state_dir
// serves the stored certificate without a new order. Each challenge is
// tested alone: Pebble's validation port of the other one is closed, so
// only the one named can succeed (the client retries a failed type with
// the other, and Pebble counts only issued certificates).
// redirect_to_https is on: HTTP-01 is answered before the redirect.
func TestACMEEndToEnd(t *testing.T) {
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("backend proto=" + r.Header.Get("X-Forwarded-Proto")))
			}))
			t.Cleanup(be.Close)
			addrs := apptest.FreeAddrs(t, 3)
			listen, listenTLS, closed := addrs[0], addrs[1], addrs[2]
			opts := pebbletest.Options{HTTPPort: portOf(t, listen), TLSPort: portOf(t, listenTLS)}
			if challenge == "http-01" {
				opts.TLSPort = portOf(t, closed)
			} else {
				opts.HTTPPort = portOf(t, closed)
			}
			ca := pebbletest.Start(t, opts)
			dir := t.TempDir()
			otherCert, otherKey := selfSigned(t, dir, "other", "other.test")
			conf := filepath.Join(dir, "sp.yaml")
			os.WriteFile(conf, []byte(fmt.Sprintf(`listen: %q
listen_tls: %q
redirect_to_https: true
state_dir: %q
tls:
  certificates:
    - {cert: %q, key: %q}
  acme:
    email: ops@example.com
    domains: [a.test]
    directory: %q
    ca_root: %q
backends:
  - url: %q
`, listen, listenTLS, filepath.Join(dir, "state"), otherCert, otherKey, ca.Directory, ca.RootFile, be.URL)), 0o600)
			if out, err := exec.Command(binary, "check", "-config", conf).CombinedOutput(); err != nil {
				t.Fatalf("check: %v\n%s", err, out)
			}
			p := startACMEProxy(t, conf, listen)
			roots := ca.Roots(t)
			var body string
			var leaf *x509.Certificate
			testutil.WaitFor(t, 60*time.Second, "an HTTPS answer with the CA's certificate", func() bool {
				var err error
				body, leaf, err = httpsGet(listenTLS, "a.test", roots)
				if err != nil {
					time.Sleep(200 * time.Millisecond)
				}
				return err == nil
			})
			if body != "backend proto=https" || leaf.DNSNames[0] != "a.test" {
				t.Fatalf("got %q with a certificate for %v", body, leaf.DNSNames)
			}
			if got := servedName(t, listenTLS, "other.test"); got != "other.test" {
				t.Fatalf("other.test was served a certificate for %s", got)
			}
			if n := ca.Issued(); n != 1 {
				t.Fatalf("%d certificates issued, want 1", n)
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get("http://" + listen + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 3 {
				t.Fatalf("plain HTTP got %d, want the redirect to HTTPS", resp.StatusCode)
			}

			// Restarts, each met by a handshake that waits in the TLS
			// listener's backlog from the moment it opens: the stored
			// certificate must be served from the first handshake, not
			// the configured one for every name until it is loaded.
			for i := 0; i < 3; i++ {
				p.stop(t)
				first := make(chan string, 1)
				go func() { first <- firstServedName(listenTLS, "a.test") }()
				p = startACMEProxy(t, conf, listen)
				if got := <-first; got != "a.test" {
					t.Fatalf("restart %d: the first handshake got %s", i+1, got)
				}
			}
			_, again, err := httpsGet(listenTLS, "a.test", roots)
			if err != nil {
				t.Fatalf("after the restart: %v", err)
			}
			if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Fatalf("after the restart serial %v, before %v", again.SerialNumber, leaf.SerialNumber)
			}
			time.Sleep(2 * time.Second) // an order started in the background would be issued by now
			if n := ca.Issued(); n != 1 {
				t.Fatalf("%d certificates issued, want 1: the restart ordered again", n)
			}
		})
	}
}

// TestACMERenewalEndToEnd: the proxy replaces a certificate in the last
// third of its life (Pebble issues 30s ones; SESSIONPROXY_ACME_RENEW_CHECK
// checks every second instead of every 10 minutes) and serves the new one
// without a restart or reload. A SIGHUP with a changed tls.acme warns
// that the block needs a restart.
func TestACMERenewalEndToEnd(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(be.Close)
	addrs := apptest.FreeAddrs(t, 2)
	listen, listenTLS := addrs[0], addrs[1]
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: portOf(t, listen), TLSPort: portOf(t, listenTLS), Validity: 30 * time.Second})
	dir := t.TempDir()
	conf := filepath.Join(dir, "sp.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`listen: %q
listen_tls: %q
state_dir: %q
tls:
  acme: {email: ops@example.com, domains: [a.test], directory: %q, ca_root: %q}
backends:
  - url: %q
`, listen, listenTLS, dir, ca.Directory, ca.RootFile, be.URL)), 0o600)
	p := startACMEProxy(t, conf, listen, "SESSIONPROXY_ACME_RENEW_CHECK=1s")
	roots := ca.Roots(t)
	var first *x509.Certificate
	testutil.WaitFor(t, 60*time.Second, "the first certificate", func() bool {
		_, leaf, err := httpsGet(listenTLS, "a.test", roots)
		first = leaf
		if err != nil {
			time.Sleep(200 * time.Millisecond)
		}
		return err == nil
	})
	testutil.WaitFor(t, 60*time.Second, "a renewed certificate", func() bool {
		body, leaf, err := httpsGet(listenTLS, "a.test", roots)
		if err != nil || body != "ok" || leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		return true
	})
	if n := ca.Issued(); n < 2 {
		t.Fatalf("%d certificates issued", n)
	}

	// A reload does not apply a changed block, and says so.
	b, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte(strings.Replace(string(b), "ops@example.com", "other@example.com", 1)), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "the reload's warning", func() bool {
		return strings.Contains(p.out.String(), "tls.acme changed")
	})
}

// TestACMECheckReportsLines: `sessionproxy check` names the file and line
// of a bad tls.acme block.
func TestACMECheckReportsLines(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "sp.yaml")
	os.WriteFile(conf, []byte("listen_tls: '127.0.0.1:8443'\nstate_dir: '"+dir+"'\nbackends: [{url: 'http://127.0.0.1:1'}]\ntls:\n  acme:\n    email: ops@example.com\n    domains: [a.test]\n    ca_root: '"+filepath.Join(dir, "none.pem")+"'\n"), 0o600)
	out, err := exec.Command(binary, "check", "-config", conf).CombinedOutput()
	if err == nil {
		t.Fatalf("check passed:\n%s", out)
	}
	if want := conf + ":8: tls.acme.ca_root: open "; !strings.Contains(string(out), want) {
		t.Fatalf("check said:\n%s\nwant %q", out, want)
	}
}

// TestACMESharedStateDir: a second proxy on the first one's state_dir
// serves the certificate the first obtained without ordering it again,
// and orders its own name, whose challenge the CA sends to the first
// proxy (the only one it reaches): the first answers it from the shared
// state_dir, though it does not manage that name.
func TestACMESharedStateDir(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(be.Close)
	addrs := apptest.FreeAddrs(t, 4)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: portOf(t, addrs[0]), TLSPort: portOf(t, addrs[1])})
	dir := t.TempDir()
	write := func(name, listen, listenTLS, domains string) string {
		conf := filepath.Join(dir, name+".yaml")
		os.WriteFile(conf, []byte(fmt.Sprintf(`listen: %q
listen_tls: %q
state_dir: %q
tls:
  acme: {email: ops@example.com, domains: %s, directory: %q, ca_root: %q}
backends:
  - url: %q
`, listen, listenTLS, filepath.Join(dir, "state"), domains, ca.Directory, ca.RootFile, be.URL)), 0o600)
		return conf
	}
	roots := ca.Roots(t)
	get := func(addr, name string) *x509.Certificate {
		t.Helper()
		var leaf *x509.Certificate
		testutil.WaitFor(t, 60*time.Second, name+" from "+addr, func() bool {
			body, l, err := httpsGet(addr, name, roots)
			if err != nil || body != "ok" {
				time.Sleep(200 * time.Millisecond)
				return false
			}
			leaf = l
			return true
		})
		return leaf
	}
	startACMEProxy(t, write("first", addrs[0], addrs[1], "[a.test]"), addrs[0])
	a := get(addrs[1], "a.test")
	startACMEProxy(t, write("second", addrs[2], addrs[3], "[a.test, b.test]"), addrs[2])
	if b := get(addrs[3], "a.test"); b.SerialNumber.Cmp(a.SerialNumber) != 0 {
		t.Fatalf("the second proxy serves a.test's serial %v, the first %v", b.SerialNumber, a.SerialNumber)
	}
	get(addrs[3], "b.test")
	if n, o := ca.Issued(), ca.Orders(); n != 2 || o < 2 {
		t.Fatalf("%d orders, %d certificates issued; want one each for a.test and b.test", o, n)
	}
}
