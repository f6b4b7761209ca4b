package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The TLS scenarios: nginx and sessionproxy terminating TLS with the same
// certificate (ECDSA P-256, what a site gets from an ACME CA today) in
// front of the same backends. wrk keeps its connections, so they measure
// the record layer on a proxied request, not handshakes.

var tlsBench = flag.Bool("tls", true, "also measure nginx and sessionproxy terminating TLS with one certificate")

// tlsAnchors are the HTTPS front ends' URLs.
type tlsAnchors struct {
	nginx, sp string
}

// tlsScenarios are measured over HTTPS on both.
var tlsScenarios = []scenario{
	{"T1 TLS plain proxy", "/plain", "hot"},
	{"T2 TLS session read (local hit)", "/read", "hot"},
}

func (e *env) startTLS(nodes []string) {
	if !*tlsBench {
		return
	}
	dir := filepath.Join(e.dir, "tls")
	os.MkdirAll(dir, 0o755)
	cert, key := writeBenchCert(dir)

	ngx := freeAddr()
	conf := nginxConfig(dir, ngx, e.backend)
	conf = strings.Replace(conf, "listen "+ngx+";", fmt.Sprintf(`listen %s ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;`, ngx, cert, key), 1)
	nconf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(nconf, []byte(conf), 0o600)
	nbin, err := exec.LookPath("nginx")
	if err != nil {
		nbin = "/usr/sbin/nginx"
	}
	ncmd, err := e.spawnLog("nginx-tls", nbin, "-c", nconf, "-p", dir, "-g", "daemon off;")
	if err != nil {
		log.Fatal(err)
	}

	sp := freeAddr()
	spconf := spConfig(freeAddr(), "sync", hotTier, e.backend, nodes) +
		fmt.Sprintf("listen_tls: %q\ntls:\n  certificates: [{cert: %q, key: %q}]\n", sp, cert, key)
	sconf := filepath.Join(dir, "sessionproxy.yaml")
	os.WriteFile(sconf, []byte(spconf), 0o600)
	scmd, err := e.spawnLog("sessionproxy-tls", filepath.Join(e.dir, "sessionproxy"), "run", "-config", sconf)
	if err != nil {
		log.Fatal(err)
	}
	waitListening(ngx)
	waitListening(sp)
	e.anchors.tls = tlsAnchors{nginx: "https://" + ngx, sp: "https://" + sp}
	e.meter(e.anchors.tls.nginx, ncmd.Process.Pid, e.sharedStack()...)
	e.meter(e.anchors.tls.sp, scmd.Process.Pid, e.sharedStack()...)
}

// tlsRuns is what each round measures over TLS: key, URL, path.
func (e *env) tlsRuns() [][3]string {
	a := e.anchors.tls
	if a.nginx == "" {
		return nil
	}
	var runs [][3]string
	for _, s := range tlsScenarios {
		runs = append(runs, [3]string{"nginx|" + s.Name, a.nginx, s.Path}, [3]string{"sessionproxy|" + s.Name, a.sp, s.Path})
	}
	return runs
}

// tlsKeys are the TLS rows' keys, in table order.
func tlsKeys(runs map[string][]result) []string {
	var keys []string
	for _, s := range tlsScenarios {
		for _, t := range []string{"nginx", "sessionproxy"} {
			if _, ok := runs[t+"|"+s.Name]; ok {
				keys = append(keys, t+"|"+s.Name)
			}
		}
	}
	return keys
}

// writeBenchCert writes a self-signed certificate and key for localhost.
func writeBenchCert(dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "bench.pem"), filepath.Join(dir, "bench.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// url is addr as wrk's URL: host:port is plain HTTP, a URL stays itself.
func url(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}
