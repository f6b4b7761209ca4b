package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sessionproxy/internal/testutil"
)

func TestImportNginx(t *testing.T) {
	code, out, errOut := run("import-nginx", "../../examples/nginx/classic.conf")
	if code != 0 {
		t.Fatalf("import-nginx: %d %s", code, errOut)
	}
	for _, want := range []string{`listen: ":80"`, "balancer: least_conn", `url: "http://10.0.0.11:8080"`, "weight: 2",
		`url: "http://10.0.0.13:8080"`, "backup: true", "max_fails: 2", "fail_timeout: 15s", "connect: 3s",
		"response: 1m0s", "max_body: 20971520"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"classic.conf:25: gzip on: left out", "classic.conf:3: worker_processes", "classic.conf:11: keepalive 32"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not list %q:\n%s", want, errOut)
		}
	}
	file := writeFile(t, out)
	if code, _, e := run("check", "-config", file); code != 0 {
		t.Fatalf("translated config does not pass check: %s", e)
	}
}

func TestImportNginxUnsupported(t *testing.T) {
	conf := writeFile(t, `http {
  upstream app { ip_hash; server 127.0.0.1:9001; server 127.0.0.1:9002 down; server unix:/tmp/x.sock; }
  server { listen 127.0.0.1:8080; location / { proxy_pass http://app/; proxy_buffering off; } }
}`)
	code, out, errOut := run("import-nginx", conf)
	if code != 0 {
		t.Fatalf("import-nginx: %d %s", code, errOut)
	}
	if !strings.Contains(out, `listen: "127.0.0.1:8080"`) || !strings.Contains(out, "balancer: round_robin") ||
		strings.Count(out, "url:") != 2 || !strings.Contains(out, `url: "unix:/tmp/x.sock"`) {
		t.Fatalf("output:\n%s", out)
	}
	for _, want := range []string{":2: ip_hash: not translated", "sessionproxy shares sessions", ":2: server 127.0.0.1:9002 down: left out",
		":3: proxy_buffering off: left out (tuning"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	nothing := writeFile(t, "http { upstream a { server 1.2.3.4; } }")
	if code, out, errOut := run("import-nginx", nothing); code != 2 || out != "" || !strings.Contains(errOut, "nothing to translate") {
		t.Fatalf("config with nothing to translate: %d %q %q", code, out, errOut)
	}
	if code, _, _ := run("import-nginx"); code != 1 {
		t.Errorf("usage error: exit %d, want 1", code)
	}
	if code, _, _ := run("import-nginx", filepath.Join(t.TempDir(), "absent.conf")); code != 1 {
		t.Errorf("unreadable file: exit %d, want 1", code)
	}
	broken := writeFile(t, "http {\n server { listen 80;\n")
	if code, _, errOut := run("import-nginx", broken); code != 1 || !strings.Contains(errOut, `:3: unexpected end of file, expecting "}"`) {
		t.Fatalf("config with a syntax error: %d %q", code, errOut)
	}
	missing := writeFile(t, "http { server { location / { root /nonexistent/www; } } }")
	code, out, errOut = run("import-nginx", missing)
	if code != 1 || !strings.Contains(out, `static: "/nonexistent/www"`) || !strings.Contains(errOut, "does not pass check on this machine") {
		t.Fatalf("a root missing here: %d\n%s\n%s", code, out, errOut)
	}
}

// siteBackend is one backend of the translated site: it answers with its
// name, the path it was asked for and what the proxy told it, and counts
// visits in the session.
func siteBackend(t *testing.T, name string, hits *atomic.Int64) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		visits, _ := strconv.Atoi(r.Header.Get("X-Session-Attr-Visits"))
		if r.Header.Get("X-Session-Id") != "" {
			w.Header().Set("X-Session-Set-Visits", strconv.Itoa(visits+1))
		}
		fmt.Fprintf(w, "%s %s visits=%d proto=%s real=%s x_custom=%s session=%v",
			name, r.URL.RequestURI(), visits+1, r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Real-Ip"),
			r.Header.Get("X_Custom"), r.Header.Get("X-Session-Id") != "")
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// TestImportNginxSiteServesTraffic translates a multi-site nginx.conf,
// runs the result and sends traffic through it to real backends: each
// request must land where nginx would have sent it.
func TestImportNginxSiteServesTraffic(t *testing.T) {
	dir := t.TempDir()
	shopCert, shopKey := selfSigned(t, dir, "shop", "shop.example.com")
	apiCert, apiKey := selfSigned(t, dir, "api", "api.example.com")
	assetsCert, assetsKey := selfSigned(t, dir, "assets", "assets.example.com", "*.assets.example.com")
	for name, body := range map[string]string{
		"www/static/app.css":  "body{}",
		"images/logo.png":     "PNG",
		"images/sub/x.png":    "X",
		"errors/50x.html":     "<h1>we are sorry</h1>",
		"assets/index.html":   "assets home",
		"assets/js/app.js":    "js",
		"www/static/sub/a.js": "sub",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	var app1, app2 atomic.Int64
	a1, a2 := siteBackend(t, "app1", &app1), siteBackend(t, "app2", &app2)
	api1, api2 := siteBackend(t, "api1", nil), siteBackend(t, "api2", nil)
	legacy := siteBackend(t, "legacy", nil)
	dead := freeAddr(t)  // nothing listens there
	plainPort := "18080" // replaced by the test's own address before running
	tlsAddr := freeAddr(t)

	nginx := fmt.Sprintf(`worker_processes auto;
events { worker_connections 1024; }
http {
    include mime.types;
    underscores_in_headers on;
    client_max_body_size 1k;
    set_real_ip_from 127.0.0.1;
    upstream app { least_conn; server %[1]s max_fails=2 fail_timeout=5s; server %[2]s max_fails=2 fail_timeout=5s; }
    upstream api { server %[3]s; server %[4]s; }
    server {
        listen %[5]s default_server;
        server_name shop.example.com;
        return 301 https://$host$request_uri;
    }
    server {
        listen %[6]s ssl default_server;
        server_name shop.example.com;
        ssl_certificate %[7]s;
        ssl_certificate_key %[8]s;
        root %[9]s/www;
        error_page 502 504 /50x.html;
        location = /50x.html { root %[9]s/errors; }
        location / { proxy_pass http://app; proxy_set_header Host $host; }
        location /api/ { proxy_pass http://api/; }
        location /static/ { }
        location /img/ { alias %[9]s/images/; }
        location /down/ { proxy_pass http://%[10]s; }
    }
    server {
        listen %[6]s ssl;
        server_name api.example.com;
        ssl_certificate %[11]s;
        ssl_certificate_key %[12]s;
        location /v1/ { proxy_pass http://api; }
        location /legacy/ { proxy_pass http://%[13]s/new/; }
        location / { proxy_pass http://api; }
    }
    server {
        listen %[6]s ssl;
        server_name .assets.example.com;
        ssl_certificate %[14]s;
        ssl_certificate_key %[15]s;
        root %[9]s/assets;
    }
}
`, a1, a2, api1, api2, "127.0.0.1:"+plainPort, tlsAddr, shopCert, shopKey, dir, dead, apiCert, apiKey, legacy, assetsCert, assetsKey)
	code, out, errOut := run("import-nginx", writeFile(t, nginx))
	if code != 0 {
		t.Fatalf("import-nginx: %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, ":4: include mime.types: left out") {
		t.Errorf("the missing include is not named:\n%s", errOut)
	}
	yaml := strings.Replace(out, `listen: "127.0.0.1:`+plainPort+`"`, `listen: "{{listen}}"`, 1)
	p := startProcess(t, yaml)
	testutil.WaitFor(t, 10*time.Second, "the TLS listener", func() bool {
		c, err := net.Dial("tcp", tlsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	pool := x509.NewCertPool()
	for _, f := range []string{shopCert, apiCert, assetsCert} {
		b, _ := os.ReadFile(f)
		pool.AppendCertsFromPEM(b)
	}
	jar, _ := cookiejar.New(nil)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	client := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, // verifies the certificate SNI picked for each host
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if strings.HasSuffix(addr, ":"+tlsPort) {
					addr = tlsAddr
				} else {
					addr = p.addr
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(url string, hdr ...string) (int, http.Header, string) {
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
		return resp.StatusCode, resp.Header, string(b)
	}
	shop := "https://shop.example.com:" + tlsPort

	// plain HTTP: redirected to HTTPS, as the nginx server did
	code, h, _ := get("http://shop.example.com:" + plainPort + "/cart?x=1")
	if code != 308 || h.Get("Location") != shop+"/cart?x=1" {
		t.Errorf("plain request: %d Location %q, want 308 to %s/cart?x=1", code, h.Get("Location"), shop)
	}

	// the app pool: sessions across both backends
	for i := 1; i <= 4; i++ {
		_, _, body := get(shop + "/cart")
		if !strings.Contains(body, " /cart visits="+strconv.Itoa(i)+" proto=https") {
			t.Fatalf("visit %d: %q", i, body)
		}
	}
	if app1.Load() == 0 || app2.Load() == 0 {
		t.Errorf("app pool: backends served %d and %d requests, want both", app1.Load(), app2.Load())
	}

	checks := []struct {
		url, want string
		hdr       []string
	}{
		{shop + "/api/users?id=7", " /users?id=7 ", nil},                               // proxy_pass with a URI: prefix replaced
		{shop + "/static/app.css", "body{}", nil},                                      // root
		{shop + "/static/sub/a.js", "sub", nil},                                        // root, deeper
		{shop + "/img/logo.png", "PNG", nil},                                           // alias
		{"https://api.example.com:" + tlsPort + "/v1/items", " /v1/items ", nil},       // proxy_pass without a URI
		{"https://api.example.com:" + tlsPort + "/legacy/a/b", "legacy /new/a/b", nil}, // direct address, URI
		{"https://api.example.com:" + tlsPort + "/other", " /other ", nil},
		{"https://assets.example.com:" + tlsPort + "/", "assets home", nil},              // .domain: the domain itself
		{"https://cdn.assets.example.com:" + tlsPort + "/js/app.js", "js", nil},          // .domain: a subdomain
		{shop + "/cart", "real=203.0.113.9", []string{"X-Forwarded-For", "203.0.113.9"}}, // set_real_ip_from 127.0.0.1
		{shop + "/cart", "x_custom=yes", []string{"X_Custom", "yes"}},                    // underscores_in_headers on
	}
	for _, c := range checks {
		code, _, body := get(c.url, c.hdr...)
		if code != 200 || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", c.url, code, body, c.want)
		}
	}
	if _, _, body := get("https://api.example.com:" + tlsPort + "/v1/x"); !strings.Contains(body, "session=true") {
		t.Errorf("api route: %q", body)
	}

	// a directory below an alias redirects to the path the client asked for
	if code, h, _ := get(shop + "/img/sub?v=2"); code != 301 || h.Get("Location") != "/img/sub/?v=2" {
		t.Errorf("alias directory without its slash: %d Location %q", code, h.Get("Location"))
	}

	// error_page for the proxy's own 502, to a browser
	code, h, body := get(shop+"/down/x", "Accept", "text/html")
	if code != 502 || body != "<h1>we are sorry</h1>" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("502 with an error page: %d %q %q", code, h.Get("Content-Type"), body)
	}
	// client_max_body_size 1k
	resp, err := client.Post(shop+"/cart", "text/plain", strings.NewReader(strings.Repeat("x", 4096)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("4 KiB body over client_max_body_size 1k: %d, want 413", resp.StatusCode)
	}
}
