package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
)

// selfSigned writes a certificate for names and its key into dir and
// returns their paths.
func selfSigned(t *testing.T, dir, base string, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// servedName connects to addr with SNI name and returns the first DNS name
// of the certificate the proxy presented.
func servedName(t *testing.T, addr, name string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", addr, name, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames[0]
}

// TestTLSListener: certificates are picked by SNI (the first is the
// default), a TLS request reaches the backend with X-Forwarded-Proto
// https and gets a Secure cookie, and SIGHUP with a broken certificate
// file keeps the old certificates.
func TestTLSListener(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set-Seen", "1")
		w.Write([]byte("proto=" + r.Header.Get("X-Forwarded-Proto")))
	}))
	t.Cleanup(be.Close)
	dir := t.TempDir()
	aCert, aKey := selfSigned(t, dir, "a", "a.test")
	bCert, bKey := selfSigned(t, dir, "b", "b.test", "*.b.test")
	tlsAddr := freeAddr(t)
	conf := "listen: '{{listen}}'\nlisten_tls: '" + tlsAddr + "'\n" +
		"tls:\n  certificates:\n    - {cert: '" + aCert + "', key: '" + aKey + "'}\n    - {cert: '" + bCert + "', key: '" + bKey + "'}\n" +
		"backends:\n  - url: '" + be.URL + "'\n"
	p := startProcess(t, conf)
	testutil.WaitFor(t, 10*time.Second, "the TLS listener", func() bool {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for name, want := range map[string]string{"a.test": "a.test", "b.test": "b.test", "x.b.test": "b.test", "other.test": "a.test"} {
		if got := servedName(t, tlsAddr, name); got != want {
			t.Errorf("SNI %s: served %s, want %s", name, got, want)
		}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + tlsAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if string(body[:n]) != "proto=https" {
		t.Errorf("backend saw %q, want X-Forwarded-Proto https", body[:n])
	}
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "Secure") {
		t.Errorf("cookie over TLS: %q, want Secure", sc)
	}

	// A broken certificate file on reload: logged, the old pair kept.
	os.WriteFile(bCert, []byte("not a certificate"), 0o600)
	p.signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "the failed reload in the log", func() bool { return strings.Contains(strings.ToLower(p.stderr()), "reload") })
	time.Sleep(200 * time.Millisecond)
	if got := servedName(t, tlsAddr, "b.test"); got != "b.test" {
		t.Errorf("after a broken reload, SNI b.test served %s: the old certificates were dropped", got)
	}
}

// TestCheckMismatchedCertificate: check names the line of a cert/key pair
// that does not belong together, or that cannot be read.
func TestCheckMismatchedCertificate(t *testing.T) {
	dir := t.TempDir()
	aCert, _ := selfSigned(t, dir, "a", "a.test")
	_, bKey := selfSigned(t, dir, "b", "b.test")
	for _, pair := range [][2]string{{aCert, bKey}, {aCert, filepath.Join(dir, "missing.key")}} {
		conf := "backends:\n  - url: 'http://127.0.0.1:9'\nlisten_tls: ':8443'\ntls:\n  certificates:\n    - {cert: '" + pair[0] + "', key: '" + pair[1] + "'}\n"
		file := writeFile(t, conf)
		code, _, errOut := run("check", "-config", file)
		if code != 1 || !strings.Contains(errOut, file+":6:") {
			t.Errorf("check with %v: %d %q, want exit 1 and an error at line 6", pair, code, errOut)
		}
	}
}
