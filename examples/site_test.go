package examples_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/memcachedtest"
)

// writeCert writes a self-signed certificate for names and its key.
func writeCert(t *testing.T, certFile, keyFile string, names ...string) {
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
	os.MkdirAll(filepath.Dir(certFile), 0o755)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// siteFiles makes, below dir, what examples/site names below /srv/site.
func siteFiles(t *testing.T, dir string) {
	t.Helper()
	for name, body := range map[string]string{
		"www/static/app.css": "body{}",
		"www/favicon.ico":    "ICO",
		"errors/50x.html":    "<h1>Back soon</h1>",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCert(t, filepath.Join(dir, "tls/shop.pem"), filepath.Join(dir, "tls/shop.key"), "shop.example.com")
	writeCert(t, filepath.Join(dir, "tls/api.pem"), filepath.Join(dir, "tls/api.key"), "api.example.com")
}

func buildProxy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sessionproxy")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/sessionproxy").CombinedOutput(); err != nil {
		t.Fatalf("building sessionproxy: %v\n%s", err, out)
	}
	return bin
}

// TestSiteExample runs examples/site/sessionproxy.yaml with its paths and
// addresses moved to this machine: two instances of the Go example as the
// app pool, two API backends, two memcached nodes. The site must behave
// as its comments say.
func TestSiteExample(t *testing.T) {
	bin := buildProxy(t)
	dir := t.TempDir()
	siteFiles(t, dir)
	goBin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", goBin, "./go").CombinedOutput(); err != nil {
		t.Fatalf("building the Go example: %v\n%s", err, out)
	}
	app1, app2 := start(t, "app1", goBin), start(t, "app2", goBin)
	api := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s session=%q", name, r.URL.RequestURI(), r.Header.Get("X-Session-Id"))
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	api1, api2 := api("api1"), api("api2")
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	plain, tlsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)

	src, err := os.ReadFile("site/sessionproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"/srv/site", dir,
		`listen: ":80"`, fmt.Sprintf("listen: %q", plain),
		`listen_tls: ":443"`, fmt.Sprintf("listen_tls: %q", tlsAddr),
		`admin: "127.0.0.1:9090"`, fmt.Sprintf("admin: %q", admin),
		"http://10.0.0.11:8080", app1, "http://10.0.0.12:8080", app2,
		"http://10.0.1.21:9000", api1, "http://10.0.1.22:9000", api2,
		"10.0.2.1:11211", n1.Addr, "10.0.2.2:11211", n2.Addr,
	).Replace(string(src))
	confFile := filepath.Join(dir, "sessionproxy.yaml")
	os.WriteFile(confFile, []byte(conf), 0o600)
	if out, err := exec.Command(bin, "check", "-config", confFile).CombinedOutput(); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "-config", confFile)
	// A state_dir of its own (hint files, with memcached nodes): not the
	// runner's ~/.local/state, which other tests' proxies share.
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "STATE_DIRECTORY=")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListen(t, tlsAddr)
	waitListen(t, plain)

	pool := x509.NewCertPool()
	for _, f := range []string{"tls/shop.pem", "tls/api.pem"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		pool.AppendCertsFromPEM(b)
	}
	jar, _ := cookiejar.New(nil)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	client := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				to := plain
				if strings.HasSuffix(addr, ":443") || strings.HasSuffix(addr, ":"+tlsPort) {
					to = tlsAddr
				}
				return (&net.Dialer{}).DialContext(ctx, network, to)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(url string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	if resp, _ := get("http://shop.example.com/cart?x=1"); resp.StatusCode != 308 || resp.Header.Get("Location") != "https://shop.example.com:"+tlsPort+"/cart?x=1" {
		t.Errorf("plain HTTP: %d %q, want 308 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The app pool keeps the session across both instances.
	seen := map[string]bool{}
	for i := 1; i <= 4; i++ {
		_, body := get("https://shop.example.com/")
		var r reply
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Counter != i {
			t.Fatalf("visit %d: %q", i, body)
		}
		seen[r.Backend] = true
	}
	if len(seen) != 2 {
		t.Errorf("the app pool's requests reached %v, want both instances", seen)
	}
	// The API pool: rewritten, and no session work.
	for _, url := range []string{"https://shop.example.com/api/users?id=1", "https://api.example.com/users?id=1"} {
		resp, body := get(url)
		if !strings.HasPrefix(body, "api") || !strings.Contains(body, " /users?id=1 session=\"\"") || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("GET %s: %q, cookie %q: want the API with path /users and no session", url, body, resp.Header.Get("Set-Cookie"))
		}
	}
	for url, want := range map[string]string{"https://shop.example.com/static/app.css": "body{}", "https://shop.example.com/favicon.ico": "ICO"} {
		if resp, body := get(url); resp.StatusCode != 200 || body != want {
			t.Errorf("GET %s: %d %q", url, resp.StatusCode, body)
		}
	}
}

func waitListen(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSiteExampleNginxTranslates: import-nginx of the site's nginx.conf
// passes check once its files exist, and gives the routes the hand-written
// example has.
func TestSiteExampleNginxTranslates(t *testing.T) {
	bin := buildProxy(t)
	dir := t.TempDir()
	siteFiles(t, dir)
	src, err := os.ReadFile("site/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	nginx := filepath.Join(dir, "nginx.conf")
	os.WriteFile(nginx, []byte(strings.ReplaceAll(string(src), "/srv/site", dir)), 0o600)
	cmd := exec.Command(bin, "import-nginx", nginx)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("import-nginx: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		`- match: {host: "api.example.com", path: "/"}`, `upstream: "api"`,
		`- match: {path: "/static/"}`, `static: "` + dir + `/www"`,
		`- match: {path: "/api/"}`, `rewrite_prefix: "/"`,
		`502: "` + dir + `/errors/50x.html"`, "redirect_to_https: true", `cert: "` + dir + `/tls/api.pem"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("translation lacks %q:\n%s", want, out)
		}
	}
	// An exact location is a route of its own now (section 15), kept
	// before the prefixes as nginx picks it first.
	if !strings.Contains(string(out), `- match: {path: "= /favicon.ico"}`) {
		t.Errorf("the exact-match location is not a route:\n%s", out)
	}
}
