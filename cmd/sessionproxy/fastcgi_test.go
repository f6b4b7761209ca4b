package main

import (
	"crypto/md5"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/phpfpmtest"
)

// phpScripts are the scripts the FastCGI tests run under real PHP-FPM.
var phpScripts = map[string]string{
	"echo.php": `<?php
header('Content-Type: text/plain');
error_log('echo.php ran: stderr, not the body');
foreach (['REQUEST_METHOD','QUERY_STRING','REQUEST_URI','CONTENT_TYPE','CONTENT_LENGTH','REMOTE_ADDR',
  'SERVER_NAME','SERVER_ADDR','SERVER_PORT','REMOTE_PORT','REDIRECT_STATUS','HTTPS','SCRIPT_NAME','SCRIPT_FILENAME','PATH_INFO','DOCUMENT_ROOT',
  'HTTP_HOST','HTTP_X_CUSTOM','HTTP_X_SESSIONPROXY_FASTCGI_CONN','HTTP_PROXY','HTTP_X_SESSION_ID'] as $k) {
  echo $k, '=', $_SERVER[$k] ?? '-', "\n";
}
$in = file_get_contents('php://input');
echo 'BODY=', strlen($in), ' ', md5($in), "\n";
`,
	"index.php":  `<?php echo 'front ', $_SERVER['REQUEST_URI'], ' ', $_SERVER['SCRIPT_NAME'];`,
	"login.php":  `<?php header('X-Session-Set-user: ann'); echo 'logged in';`,
	"me.php":     `<?php echo 'user=', $_SERVER['HTTP_X_SESSION_ATTR_USER'] ?? '-';`,
	"status.php": `<?php header('Location: /elsewhere'); http_response_code(418); echo 'teapot';`,
	"big.php": `<?php
header('Content-Type: application/octet-stream');
$n = (int)$_GET['mib'];
$block = str_repeat('0123456789abcdef', 4096);
for ($i = 0; $i < $n * 16; $i++) { echo $block; }
`,
	"upload.php": `<?php
if (isset($_FILES['f'])) { echo 'file ', $_FILES['f']['size'], ' ', md5_file($_FILES['f']['tmp_name']); exit; }
$in = file_get_contents('php://input');
echo 'raw ', strlen($in), ' ', md5($in);
`,
	"sink.php": `<?php
$h = hash_init('md5'); $n = 0; $in = fopen('php://input', 'rb');
while (!feof($in)) { $b = fread($in, 65536); $n += strlen($b); hash_update($h, $b); }
echo $n, ' ', hash_final($h), ' ', $_SERVER['CONTENT_LENGTH'];
`,
	"slow.php":      `<?php sleep(3); echo 'late';`,
	"sub/inner.php": `<?php echo 'inner ', $_SERVER['SCRIPT_NAME'], ' ', $_SERVER['PATH_INFO'] ?? '-';`,
	"app.css":       `body{}`,
	".env":          `SECRET=1`,
}

// phpSite writes phpScripts into a fresh directory and starts PHP-FPM
// over it.
func phpSite(t *testing.T) *phpfpmtest.Server {
	t.Helper()
	root := t.TempDir()
	for name, text := range phpScripts {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return phpfpmtest.Start(t, root, nil)
}

// phpConfig is a config with the shipped defaults and one FastCGI
// upstream as the default pool.
func phpConfig(url, root string) string {
	return fmt.Sprintf("listen: '{{listen}}'\nadmin: '{{admin}}'\nbackends:\n  - url: '%s'\nfastcgi:\n  root: '%s'\n", url, root)
}

func fields(body string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// The CGI parameters a PHP script sees, through the binary with default
// config, over TCP and over the Unix socket; the client's Proxy header
// never reaches it (httpoxy), its X-Session-* headers are replaced by the
// proxy's, and the script's STDERR goes to the log, not the body.
func TestFastCGIParams(t *testing.T) {
	fpm := phpSite(t)
	for _, url := range []string{"fastcgi://" + fpm.Addr, "fastcgi+unix:" + fpm.Socket} {
		t.Run(url[:7], func(t *testing.T) {
			p := startProcess(t, phpConfig(url, fpm.Root))
			body := "name=ann&x=1"
			req, _ := http.NewRequest("POST", "http://"+p.addr+"/echo.php/extra/path?a=1&b=%2F", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Proxy", "http://evil.example:3128")
			req.Header.Set("X-Custom", "v")
			req.Header.Set("X-Session-Id", "forged")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := fields(string(b))
			_, port, _ := net.SplitHostPort(p.addr)
			want := map[string]string{
				"REQUEST_METHOD": "POST", "QUERY_STRING": "a=1&b=%2F", "REQUEST_URI": "/echo.php/extra/path?a=1&b=%2F",
				"CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": fmt.Sprint(len(body)),
				"REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": port, "HTTPS": "-",
				"SCRIPT_NAME": "/echo.php", "SCRIPT_FILENAME": fpm.Root + "/echo.php", "PATH_INFO": "/extra/path",
				"DOCUMENT_ROOT": fpm.Root, "HTTP_HOST": p.addr, "HTTP_X_CUSTOM": "v",
				// PHP 8.2 drops HTTP_PROXY itself; TestProxyHeaderDropped is the proxy's part.
				"HTTP_PROXY": "-",
				"BODY":       fmt.Sprintf("%d %x", len(body), md5.Sum([]byte(body))),
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
			if sid := got["HTTP_X_SESSION_ID"]; sid == "forged" || sid == "-" || sid == "" {
				t.Errorf("HTTP_X_SESSION_ID=%q, want the proxy's session ID", sid)
			}
			if strings.Contains(string(b), "stderr") {
				t.Errorf("STDERR reached the body:\n%s", b)
			}
			waitLog(t, p, "echo.php ran: stderr")
		})
	}
}

// Which script runs: a .php path ending a segment runs that script (and
// it must exist), anything else the front controller; Status and
// Location from the script reach the client.
func TestFastCGIScriptRules(t *testing.T) {
	fpm := phpSite(t)
	p := startProcess(t, phpConfig("fastcgi+unix:"+fpm.Socket, fpm.Root))
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]string{
		"/":                       "200 front / /index.php",
		"/some/route?x=1":         "200 front /some/route?x=1 /index.php",
		"/echo.phpx":              "200 front /echo.phpx /index.php",
		"/sub/inner.php":          "200 inner /sub/inner.php -",
		"/sub/inner.php/a/b":      "200 inner /sub/inner.php /a/b",
		"/sub/../sub/inner.php":   "200 inner /sub/inner.php -",
		"/sub/%69nner.php":        "200 inner /sub/inner.php -",
		"/nope.php":               "404",
		"/nope.php/x":             "404",
		"/sub/nope.php/inner.php": "404",
		"/status.php":             "418 teapot",
	} {
		code, body := fetchBody(t, client, "http://"+p.addr+path)
		got := fmt.Sprint(code)
		if code != 404 {
			got += " " + body
		}
		if got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}

// A static route's try_files falls back to a FastCGI pool's front
// controller whatever the path (nginx's "try_files $uri $uri/
// /index.php?$query_string"), and a pool with script: path runs the path
// itself (nginx's fastcgi_pass without fastcgi_split_path_info): a
// script refused by a regex ending in \.php$ is never run by adding
// "/x" to its path, however the path is spelt (issue 26). Requests are
// raw bytes on a socket, so that nothing cleans the path on the way.
func TestFastCGIFrontControllerAndWholePath(t *testing.T) {
	fpm := phpSite(t)
	rt := "routes:\n" +
		"  - match: {path: '~ ^/sub/.*\\.php$'}\n    respond: {status: 403}\n" +
		"  - match: {path: '~ \\.php$'}\n    upstream: php\n" +
		"  - match: {path: '/'}\n    static: '" + fpm.Root + "'\n    try_files: ['$uri', '@php']\n"
	front := func(uri string) string { return "200 front " + uri + " /index.php" }
	for _, script := range []string{"path", "split"} {
		t.Run(script, func(t *testing.T) {
			conf := fmt.Sprintf("listen: '{{listen}}'\nadmin: '{{admin}}'\nbackends: []\nupstreams:\n  php:\n    backends: [{url: 'fastcgi+unix:%s'}]\n    fastcgi: {root: '%s', script: %s}\n%s", fpm.Socket, fpm.Root, script, rt)
			p := startProcess(t, conf)
			want := map[string]string{
				"/sub/inner.php":                "403",
				"/sub/inner.php/x":              front("/sub/inner.php/x"),
				"/sub/inner.php/":               front("/sub/inner.php/"),
				"/sub/inner.php/x.php":          "403",
				"/sub/inner%2ephp/x":            front("/sub/inner%2ephp/x"),
				"/sub/inner%2Ephp/x":            front("/sub/inner%2Ephp/x"),
				"/sub/inner.php%2fx":            front("/sub/inner.php%2fx"),
				"/sub/inner.php%2F":             front("/sub/inner.php%2F"),
				"//sub//inner.php/x":            front("//sub//inner.php/x"),
				"/./sub/./inner.php/x":          front("/./sub/./inner.php/x"),
				"/x/../sub/inner.php/x":         front("/x/../sub/inner.php/x"),
				"/sub/x/..%2finner.php/x":       "400",
				"/SUB/INNER.PHP/x":              front("/SUB/INNER.PHP/x"),
				"/sub/inner.PHP/x":              front("/sub/inner.PHP/x"),
				"/sub/inner.php./x":             front("/sub/inner.php./x"),
				"/sub/inner.php;/x":             front("/sub/inner.php;/x"),
				"/sub/inner.php%00/x":           front("/sub/inner.php%00/x"), // a name no file has: the front controller's
				"/index.php/../sub/inner.php/x": front("/index.php/../sub/inner.php/x"),
				"/nope/route?a=1":               front("/nope/route?a=1"),
				"/app.css":                      "200 body{}",
				"/status.php":                   "418 teapot",
				// the \.php$ route: the whole path is the script
				"/index.php/sub/inner.php": "404",
				"/status.php/x.php":        "404",
			}
			if script == "split" {
				// section 13's split: the first segment ending in .php
				want["/index.php/sub/inner.php"] = "200 front /index.php/sub/inner.php /index.php"
				want["/status.php/x.php"] = "418 teapot"
			}
			for path, w := range want {
				c, br := rawGet(t, p.addr, path, "Connection: close\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				c.Close()
				got := fmt.Sprint(resp.StatusCode)
				if resp.StatusCode < 400 || resp.StatusCode == 418 {
					got += " " + string(b)
				}
				if got != w {
					t.Errorf("GET %s: %q, want %q", path, got, w)
				}
			}
		})
	}
}

// Sessions through headers: a script sets an attribute, the next request
// of the same client sees it; over the Unix socket pool.
func TestFastCGISessions(t *testing.T) {
	fpm := phpSite(t)
	p := startProcess(t, phpConfig("fastcgi+unix:"+fpm.Socket, fpm.Root))
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	if code, body := fetchBody(t, client, "http://"+p.addr+"/login.php"); code != 200 || body != "logged in" {
		t.Fatalf("login: %d %q", code, body)
	}
	if code, body := fetchBody(t, client, "http://"+p.addr+"/me.php"); code != 200 || body != "user=ann" {
		t.Fatalf("me: %d %q", code, body)
	}
	other := &http.Client{Timeout: 10 * time.Second}
	if _, body := fetchBody(t, other, "http://"+p.addr+"/me.php"); body != "user=-" {
		t.Fatalf("another client: %q", body)
	}
}

// A large answer streams through the proxy in bounded memory.
func TestFastCGIStreamsLargeResponse(t *testing.T) {
	const mib, limitKiB = 128, 48 << 10
	fpm := phpSite(t)
	// The plain build: the race detector's own memory would drown the
	// measure.
	p := startBinary(t, plainBinary(t), phpConfig("fastcgi://"+fpm.Addr, fpm.Root)+"max_body: 128MiB\n")
	fetchBody(t, http.DefaultClient, "http://"+p.addr+"/big.php?mib=1")
	before := procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")
	resp, err := http.Get(fmt.Sprintf("http://%s/big.php?mib=%d", p.addr, mib))
	if err != nil {
		t.Fatal(err)
	}
	block := strings.Repeat("0123456789abcdef", 4096)
	want := md5.New()
	for range mib * 16 {
		io.WriteString(want, block)
	}
	got := md5.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != mib<<20 || fmt.Sprintf("%x", got.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatalf("%d of %d bytes, %v", n, mib<<20, err)
	}
	// A 48 MiB chunked upload: spooled to a temporary file so that
	// CONTENT_LENGTH is known, never held in memory.
	const up = 48 << 20
	h := md5.New()
	src := io.TeeReader(io.LimitReader(newBlocks(t), up), h)
	req, _ := http.NewRequest("POST", "http://"+p.addr+"/sink.php", struct{ io.Reader }{src})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x %d", up, h.Sum(nil), up); resp.StatusCode != 200 || string(answer) != want {
		t.Fatalf("upload: %d %q, want %q", resp.StatusCode, answer, want)
	}
	after := procStatusKiB(t, p.cmd.Process.Pid, "VmHWM:")
	t.Logf("proxy VmHWM +%d KiB for %d MiB down and %d MiB up", after-before, mib, up>>20)
	if after-before >= limitKiB {
		t.Fatalf("peak RSS grew by %d KiB, want under %d", after-before, limitKiB)
	}
}

// A script slower than timeouts.response is answered 504, and the next
// request is served.
func TestFastCGIResponseTimeout(t *testing.T) {
	fpm := phpSite(t)
	p := startProcess(t, phpConfig("fastcgi://"+fpm.Addr, fpm.Root)+"timeouts:\n  response: 500ms\n")
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	if code, _ := fetchBody(t, client, "http://"+p.addr+"/slow.php"); code != 504 {
		t.Fatalf("slow.php: %d, want 504", code)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Fatalf("504 took %v", took)
	}
	if code, body := fetchBody(t, client, "http://"+p.addr+"/me.php"); code != 200 || body != "user=-" {
		t.Fatalf("after the timeout: %d %q", code, body)
	}
}

// Uploads: a chunked body (no length) is read whole first so that PHP
// gets CONTENT_LENGTH, and a multipart file arrives intact.
func TestFastCGIUpload(t *testing.T) {
	fpm := phpSite(t)
	p := startProcess(t, phpConfig("fastcgi://"+fpm.Addr, fpm.Root))
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	sum := fmt.Sprintf("%x", md5.Sum(data))

	req, _ := http.NewRequest("POST", "http://"+p.addr+"/upload.php", struct{ io.Reader }{strings.NewReader(string(data))})
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("raw %d %s", len(data), sum); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("chunked upload: %d %q, want %q", resp.StatusCode, b, want)
	}

	// With a length: streamed to PHP-FPM as it comes.
	resp, err = http.Post("http://"+p.addr+"/upload.php", "application/octet-stream", strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("raw %d %s", len(data), sum); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("upload with a length: %d %q, want %q", resp.StatusCode, b, want)
	}

	pr, pw := io.Pipe()
	mw := newMultipart(pw, data)
	req, _ = http.NewRequest("POST", "http://"+p.addr+"/upload.php", pr)
	req.Header.Set("Content-Type", mw)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("file %d %s", len(data), sum); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("multipart upload: %d %q, want %q", resp.StatusCode, b, want)
	}
}

// newMultipart writes a multipart form with data as file "f" to w in the
// background and returns its Content-Type.
func newMultipart(w *io.PipeWriter, data []byte) string {
	const boundary = "sessionproxyboundary"
	go func() {
		fmt.Fprintf(w, "--%s\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n", boundary)
		w.Write(data)
		fmt.Fprintf(w, "\r\n--%s--\r\n", boundary)
		w.Close()
	}()
	return "multipart/form-data; boundary=" + boundary
}

// PHP source is never served: a static route over the site's own
// directory answers 404 for any .php name (any case) and for dot files,
// and the FastCGI route runs scripts rather than reading them.
func TestFastCGISourceNeverServed(t *testing.T) {
	fpm := phpSite(t)
	conf := phpConfig("fastcgi://"+fpm.Addr, fpm.Root) + fmt.Sprintf("routes:\n  - match: {path: '/files/'}\n    static: '%s'\n    rewrite_prefix: '/'\n", fpm.Root)
	p := startProcess(t, conf)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/files/echo.php", "/files/ECHO.PHP", "/files/sub/inner.php", "/files/.env", "/files/echo.php/", "/files/%2eenv", "/files/echo%2ephp"} {
		code, body := fetchBody(t, client, "http://"+p.addr+path)
		if code != 404 || strings.Contains(body, "<?php") {
			t.Errorf("%s: %d %q, want 404", path, code, body)
		}
	}
	if code, body := fetchBody(t, client, "http://"+p.addr+"/files/app.css"); code != 200 || body != "body{}" {
		t.Errorf("app.css: %d %q", code, body)
	}
	if _, body := fetchBody(t, client, "http://"+p.addr+"/echo.php"); strings.Contains(body, "<?php") || !strings.Contains(body, "REQUEST_METHOD=GET") {
		t.Errorf("/echo.php: %q", body)
	}
}

// A FastCGI backend that is gone answers 502 and is marked down; the
// active health check goes through FastCGI too.
func TestFastCGIDeadBackendAndHealth(t *testing.T) {
	fpm := phpSite(t)
	dead := filepath.Join(t.TempDir(), "gone.sock")
	conf := fmt.Sprintf("listen: '{{listen}}'\nadmin: '{{admin}}'\nretries: 0\nbackends:\n  - url: 'fastcgi+unix:%s'\n  - url: 'fastcgi://%s'\nfastcgi:\n  root: '%s'\nhealth:\n  check_path: /me.php\n  check_interval: 100ms\n", dead, fpm.Addr, fpm.Root)
	// retries: 0 so that a request to the dead socket is answered 502.
	p := startProcess(t, conf)
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, status := fetchBody(t, client, "http://"+p.admin+"/status")
		upDead, ok1 := backendUp(t, status, "fastcgi+unix:"+dead)
		upLive, ok2 := backendUp(t, status, "fastcgi://"+fpm.Addr)
		if ok1 && ok2 && !upDead && upLive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead socket not marked down, or the live pool not up:\n%s", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 4 {
		if code, body := fetchBody(t, client, "http://"+p.addr+"/me.php"); code != 200 || body != "user=-" {
			t.Fatalf("%d %q", code, body)
		}
	}
}
