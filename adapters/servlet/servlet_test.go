// Package servlet_test runs the classic setup's own page (testdata/classic,
// verbatim) and the test pages (testdata/app) on two real Tomcat 10
// instances with sessionproxy-servlet.jar in WEB-INF/lib, behind the real
// sessionproxy binary and two real memcached nodes, with the shipped
// defaults otherwise, as a user would (CONTRACT.md section 13). A Flask app
// with the Python adapter shares the proxy, to show that a typed value
// written in one language is read with its type in the other.
package servlet_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
	"sessionproxy/internal/testutil"
)

// catalinaHome is Debian's Tomcat 10 runtime (tomcat10-common, libtomcat10-java),
// or $CATALINA_HOME.
// None is a failure, not a skip: `make deps` installs it.
func catalinaHome(t testing.TB) string {
	t.Helper()
	home := os.Getenv("CATALINA_HOME")
	if home == "" {
		home = "/usr/share/tomcat10"
	}
	if _, err := os.Stat(filepath.Join(home, "bin", "bootstrap.jar")); err != nil {
		t.Fatalf("no Tomcat 10 at %s: run `make deps` (Debian's tomcat10-common libtomcat10-java default-jdk-headless) or set CATALINA_HOME", home)
	}
	for _, tool := range []string{"java", "javac", "jar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("no %s: run `make deps` (Debian's default-jdk-headless)", tool)
		}
	}
	return home
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// buildJar builds sessionproxy-servlet.jar as a user would (make -C
// adapters/servlet) and returns its path.
func buildJar(t testing.TB) string {
	t.Helper()
	catalinaHome(t)
	buildOnce.Do(func() {
		buildOut, buildErr = exec.Command("make", "--no-print-directory").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("make: %v\n%s", buildErr, buildOut)
	}
	jar, _ := filepath.Abs("sessionproxy-servlet.jar")
	return jar
}

// The Servlet API jars the adapter builds against: Debian's
// libjakarta-servlet-api-java (5.0, which the Makefile prefers) and
// Tomcat 10.1's own (6.0, which removed HttpSession.getSessionContext).
const (
	servletAPI50 = "/usr/share/java/jakarta-servlet-api.jar"
	servletAPI60 = "/usr/share/java/tomcat10-servlet-api.jar"
)

// buildJarAgainst builds the jar from a copy of the sources against the
// API jar api and returns its path.
func buildJarAgainst(t *testing.T, api string) string {
	t.Helper()
	if _, err := os.Stat(api); err != nil {
		t.Fatalf("no %s: run `make deps` (Debian's libjakarta-servlet-api-java, libtomcat10-java)", api)
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", "Makefile", "META-INF", "src", dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if out, err := exec.Command("make", "--no-print-directory", "-C", dir, "SERVLET_API="+api).CombinedOutput(); err != nil {
		t.Fatalf("make SERVLET_API=%s: %v\n%s", api, err, out)
	}
	return filepath.Join(dir, "sessionproxy-servlet.jar")
}

// TestServletCodecVectors checks the Java codec against the vectors every
// adapter shares (../testdata/vectors.json) and the edges of its JSON.
func TestServletCodecVectors(t *testing.T) {
	jar := buildJar(t)
	classes := t.TempDir()
	if out, err := exec.Command("javac", "-encoding", "UTF-8", "-cp", jar, "-d", classes, "testdata/CodecVectors.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	out, err := exec.Command("java", "-cp", jar+string(os.PathListSeparator)+classes, "sessionproxy.servlet.CodecVectors", "../testdata/vectors.json").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(" passed, 0 failed")) {
		t.Fatalf("CodecVectors: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// javaCodec is a running testdata/CodecFuzz.java: the adapter's codec,
// asked one line at a time.
type javaCodec struct {
	mu  sync.Mutex
	in  io.Writer
	out *bufio.Reader
}

func startJavaCodec(tb testing.TB) *javaCodec {
	tb.Helper()
	jar := buildJar(tb)
	classes := tb.TempDir()
	if out, err := exec.Command("javac", "-encoding", "UTF-8", "-cp", jar, "-d", classes, "testdata/CodecFuzz.java").CombinedOutput(); err != nil {
		tb.Fatalf("javac: %v\n%s", err, out)
	}
	cmd := exec.Command("java", "-cp", jar+string(os.PathListSeparator)+classes, "sessionproxy.servlet.CodecFuzz")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	return &javaCodec{in: in, out: bufio.NewReaderSize(out, 1<<16)}
}

func (j *javaCodec) ask(t *testing.T, op string, in []byte) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := fmt.Fprintf(j.in, "%s %s\n", op, hex.EncodeToString(in)); err != nil {
		t.Fatalf("CodecFuzz: %v", err)
	}
	line, err := j.out.ReadString('\n')
	if err != nil {
		t.Fatalf("CodecFuzz: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// unpercent is CONTRACT.md section 13's percent-decoding: %XX is that byte,
// any other % is literal.
func unpercent(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		if in[i] == '%' && i+2 < len(in) && isHex(in[i+1]) && isHex(in[i+2]) {
			b, _ := hex.DecodeString(string(in[i+1 : i+3]))
			out = append(out, b[0])
			i += 2
			continue
		}
		out = append(out, in[i])
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// FuzzServletCodec checks the Java adapter's codec on any input: reading a
// value or a name never throws, its JSON reader agrees with encoding/json
// on what is JSON (so a value another language wrote is never misread as a
// plain string, nor the other way round), and any text and any name
// survive writing and reading back.
func FuzzServletCodec(f *testing.F) {
	j := startJavaCodec(f)
	for _, seed := range []string{
		`[1,2]`, `{"items":[1,2]}`, `{"a":`, `%22Jos%C3%A9%22`, "%ZZ", "%", "%2", "100%", "-0", "1e5", "1E+2",
		"01", "1.", "-", ".5", `"\u0041"`, `"\u٣٣٣٣"`, `"\ud83d\ude42"`, `"\x"`, " 1 ", "\t[ ]\r\n", "{}",
		`{"a":[1,{"b":null}],"c":true}`, "José 🙂", "pojun.tech", "a-zz", "USER_49D", "\xff\xfe", "caf\xe9",
		"tru", "nul", "", "[1,]", `{"a" 1}`, `{1:2}`, "1 2", "\"a\x01\"", strings.Repeat("[", 600),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 {
			return
		}
		got := j.ask(t, "V", in)
		dec := unpercent(in)
		want := "P"
		// The adapter reads JSON nested up to 512 deep (deeper is a plain
		// string), encoding/json up to 10000.
		deep := bytes.Count(dec, []byte("[")) + bytes.Count(dec, []byte("{"))
		if json.Valid(dec) && (deep < 500 || got != "P") {
			want = "J"
		}
		if got != want {
			t.Fatalf("%q (decoded %q): the adapter says %s, encoding/json says %s", in, dec, got, want)
		}
		for _, op := range []string{"R", "N", "D"} {
			if a := j.ask(t, op, in); a != "ok" {
				t.Fatalf("%s %q: %s", op, in, a)
			}
		}
	})
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startTomcat lays out a CATALINA_BASE (a conf/ of our own: a server.xml
// of one loopback connector and no shutdown port, and testdata/conf/web.xml),
// deploys the webapp as ROOT with the jar in WEB-INF/lib and nothing else
// (no web.xml: the jar's web-fragment.xml is what installs the adapter),
// and starts Tomcat in the foreground. Its Server header names the
// instance; its output is Tomcat's log.
//
// Nothing is read from Debian's stock conf (/usr/share/tomcat10/etc):
// only the tomcat10 package ships it, and that package also enables and
// starts a system Tomcat on port 8080, the demo's. The runtime comes from
// tomcat10-common and libtomcat10-java, which start nothing. Without
// conf/catalina.properties Tomcat reads the one inside catalina.jar (the
// same class loaders); without conf/context.xml apps get no default
// <Context> settings, which the test does not need; without
// conf/logging.properties JULI logs to the console (the JDK's defaults),
// which is the output run collects.
func startTomcat(t *testing.T, home, jar, name string) (addr string, log *apptest.Output) {
	t.Helper()
	base := t.TempDir()
	copyFile(t, "testdata/conf/web.xml", filepath.Join(base, "conf", "web.xml"))
	for _, d := range []string{"logs", "temp", "work", "lib"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	addr = testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	// maxHttpHeaderSize as the README asks: Tomcat's default of 8 KiB
	// bounds response headers too, and a larger attribute would fail there
	// (500) long before the proxy's max_size.
	serverXML := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="%s" address="127.0.0.1" protocol="HTTP/1.1" server="%s" connectionTimeout="20000" maxHttpHeaderSize="81920"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
`, port, name)
	if err := os.WriteFile(filepath.Join(base, "conf", "server.xml"), []byte(serverXML), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "webapps", "ROOT")
	copyFile(t, "testdata/classic/index.jsp", filepath.Join(root, "index.jsp"))
	pages, _ := filepath.Glob("testdata/app/*.jsp")
	for _, p := range pages {
		copyFile(t, p, filepath.Join(root, filepath.Base(p)))
	}
	copyFile(t, jar, filepath.Join(root, "WEB-INF", "lib", "sessionproxy-servlet.jar"))
	// /legacy: an app whose web.xml is metadata-complete (no fragments),
	// with the listener declared there and a session-reading filter of
	// its own.
	legacy := filepath.Join(base, "webapps", "legacy")
	copyFile(t, "testdata/legacy/WEB-INF/web.xml", filepath.Join(legacy, "WEB-INF", "web.xml"))
	copyFile(t, "testdata/app/whoami.jsp", filepath.Join(legacy, "whoami.jsp"))
	copyFile(t, jar, filepath.Join(legacy, "WEB-INF", "lib", "sessionproxy-servlet.jar"))
	if out, err := exec.Command("javac", "-cp", filepath.Join(home, "lib", "servlet-api.jar"), "-d",
		filepath.Join(legacy, "WEB-INF", "classes"), "testdata/legacy/SeenFilter.java").CombinedOutput(); err != nil {
		t.Fatalf("javac SeenFilter: %v\n%s", err, out)
	}
	cp := filepath.Join(home, "bin", "bootstrap.jar") + string(os.PathListSeparator) + filepath.Join(home, "bin", "tomcat-juli.jar")
	// A small heap and the quick JIT tier: two instances share a small
	// machine with the rest of the tests.
	log = apptest.Run(t, name, nil, "java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dcatalina.home="+home, "-Dcatalina.base="+base, "-Djava.io.tmpdir="+filepath.Join(base, "temp"),
		"-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager",
		"-Dsessionproxy.test.instance="+name,
		"-cp", cp, "org.apache.catalina.startup.Bootstrap", "start")
	return addr, log
}

// site is the proxy with the two Tomcats as its default pool and a Flask
// app with the Python adapter as the upstream "flask" (/flask/…).
type site struct {
	base, admin string
	tomcats     []*apptest.Output // each Tomcat's log (its output)
}

// logged reports whether a Tomcat's log has a line containing text
// (ServletContext.log goes there).
func (s *site) logged(text string) bool {
	for _, log := range s.tomcats {
		if strings.Contains(log.String(), text) {
			return true
		}
	}
	return false
}

func startSite(t *testing.T) *site {
	t.Helper()
	home := catalinaHome(t)
	jar := buildJar(t)
	py := apptest.Python(t, "flask")
	// One Tomcat runs the jar as `make` builds it, the other one built
	// against the other Servlet API: both must behave as one.
	other := servletAPI60
	if out, _ := exec.Command("jar", "tf", jar).Output(); !bytes.Contains(out, []byte("EmptySessionContext")) {
		other = servletAPI50
	}
	t1, log1 := startTomcat(t, home, jar, "tomcat-1")
	t2, log2 := startTomcat(t, home, buildJarAgainst(t, other), "tomcat-2")
	tomcats := []string{t1, t2}
	pyDir, _ := filepath.Abs("../python")
	flask := testutil.FreeAddr(t)
	apptest.Run(t, "flask", []string{"PYTHONPATH=" + pyDir, "PYTHONDONTWRITEBYTECODE=1"},
		py, filepath.Join(pyDir, "tests", "apps", "flask_app.py"), "--listen", flask, "--name", "flask")
	bin := filepath.Join(t.TempDir(), "sessionproxy")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sessionproxy").CombinedOutput(); err != nil {
		t.Fatalf("building sessionproxy: %v\n%s", err, out)
	}
	n1, n2 := memcachedtest.Start(t), memcachedtest.Start(t)
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	// Everything not named here is the shipped default (access log on,
	// round robin, create on write, sync writes, the local tier).
	conf := fmt.Sprintf(`listen: %q
admin: %q
backends:
  - url: "http://%s"
  - url: "http://%s"
upstreams:
  flask:
    backends: [{url: "http://%s"}]
routes:
  - match: {path: "/flask/"}
    upstream: flask
session:
  memcached:
    nodes: ["n1:%s", "n2:%s"]
`, listen, admin, tomcats[0], tomcats[1], flask, n1.Addr, n2.Addr)
	confFile := filepath.Join(t.TempDir(), "sessionproxy.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	apptest.StartProxy(t, bin, confFile, listen)
	apptest.WaitListen(t, flask, "flask", 30*time.Second)
	// Tomcat takes seconds to start on a loaded machine; then each page
	// is compiled on its first request.
	for _, a := range tomcats {
		apptest.WaitListen(t, a, "tomcat", 120*time.Second)
	}
	return &site{base: "http://" + listen, admin: "http://" + admin, tomcats: []*apptest.Output{log1, log2}}
}

// browser is a client with its own cookie jar.
type browser struct {
	t    *testing.T
	c    *http.Client
	site *site
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 60 * time.Second}, site: s}
}

// get fetches path and returns the answer's body and the instance that
// answered (Tomcat's Server header). Every answer is checked for what
// must never reach a client: X-Session-* headers and a JSESSIONID.
func (b *browser) get(path string) (string, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.site.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-session-") {
			b.t.Fatalf("GET %s: %s reached the client", path, k)
		}
	}
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(strings.ToUpper(c), "JSESSIONID") {
			b.t.Fatalf("GET %s: Tomcat set its own session cookie: %s", path, c)
		}
	}
	if strings.Contains(string(body), "jsessionid") {
		b.t.Fatalf("GET %s: a URL with ;jsessionid: %s", path, body)
	}
	return string(body), resp.Header.Get("Server")
}

// facts reads a test page's key=value lines.
func (b *browser) facts(path string) (map[string]string, string) {
	b.t.Helper()
	body, server := b.get(path)
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m, server
}

func (b *browser) cookie() string {
	u, _ := url.Parse(b.site.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "SPSESSIONID" {
			return c.Value
		}
	}
	return ""
}

// stored returns the session the store holds under id (the admin's
// GET /sessions/<id>), or nil if it holds no such session.
func (s *site) stored(t *testing.T, id string) *storedSession {
	t.Helper()
	resp, err := http.Get(s.admin + "/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var doc storedSession
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&doc) != nil {
		t.Fatalf("GET /sessions/%s: %d", id, resp.StatusCode)
	}
	return &doc
}

type storedSession struct {
	Created    int64             `json:"created"`
	Attributes map[string]string `json:"attributes"`
}

var (
	seedID      = regexp.MustCompile(`(?s)<td>Session ID</td>.*?<td>([^<]*)</td>`)
	seedCreated = regexp.MustCompile(`(?s)<td>Created on</td>\s*<td>([^<]*)</td>`)
)

func TestServletAdapterBehindProxy(t *testing.T) {
	s := startSite(t)

	t.Run("classic page on two Tomcats: one ID, one creation time", func(t *testing.T) {
		t.Parallel()
		b := s.browser(t)
		seen := map[string]bool{}
		var id, created string
		// The balancer is round robin, but the other subtests' requests
		// share it: ask until both Tomcats have answered.
		for i := 0; i < 6 || len(seen) < 2 && i < 30; i++ {
			body, server := b.get("/index.jsp")
			m, c := seedID.FindStringSubmatch(body), seedCreated.FindStringSubmatch(body)
			if m == nil || c == nil {
				t.Fatalf("request %d: not the seed page: %q", i, body)
			}
			if i == 0 {
				id, created = m[1], c[1]
			}
			if m[1] != id || c[1] != created {
				t.Fatalf("request %d (%s): ID %q created %q, want %q %q as before", i, server, m[1], c[1], id, created)
			}
			seen[server] = true
		}
		if len(seen) != 2 || !seen["tomcat-1"] || !seen["tomcat-2"] {
			t.Fatalf("the page came from %v, want both Tomcats", seen)
		}
		if b.cookie() != id {
			t.Fatalf("cookie %q, page's session ID %q", b.cookie(), id)
		}
		st := s.stored(t, id)
		if st == nil || st.Attributes["pojun-2etech"] != `"pojun.tech"` || fmt.Sprint(st.Created) != created {
			t.Fatalf("the store holds %+v under %s: want pojun-2etech=\"pojun.tech\" created %s", st, id, created)
		}
		// The root path too: Tomcat's welcome file through the filter.
		if body, _ := b.get("/"); !strings.Contains(body, id) {
			t.Fatalf("GET / shows another session: %q", body)
		}
	})

	// Section 16: setMaxInactiveInterval(n) reaches the proxy as
	// X-Session-Max-Age: the session's own ttl in the store and a
	// persistent cookie; the filter's default goes back to a session cookie.
	t.Run("setMaxInactiveInterval is remember me", func(t *testing.T) {
		t.Parallel()
		code, set := apptest.SessionSetCookie(t, s.base+"/remember.jsp?n=1209600", "", "SPSESSIONID")
		id, _, _ := strings.Cut(strings.TrimPrefix(set, "SPSESSIONID="), ";")
		if code != 200 || !strings.Contains(set, "; Max-Age=1209600;") {
			t.Fatalf("remember me: %d, Set-Cookie %q", code, set)
		}
		if got := apptest.StoredTTL(t, s.admin, id); got != 1209600 {
			t.Fatalf("the store holds ttl %d, want 1209600", got)
		}
		code, set = apptest.SessionSetCookie(t, s.base+"/remember.jsp?n=1800", "SPSESSIONID="+id, "SPSESSIONID")
		if code != 200 || set != "SPSESSIONID="+id+"; Path=/; HttpOnly; SameSite=Lax" {
			t.Fatalf("back to the default: %d, Set-Cookie %q, want a session cookie", code, set)
		}
		if got := apptest.StoredTTL(t, s.admin, id); got != 1800 {
			t.Fatalf("back to the default: the store holds ttl %d, want 1800", got)
		}
	})

	t.Run("changeSessionId rotates, invalidate logs out", func(t *testing.T) {
		t.Parallel()
		b := s.browser(t)
		body, _ := b.get("/index.jsp")
		anon := seedID.FindStringSubmatch(body)[1]
		in, _ := b.facts("/login.jsp?user=ann")
		if in["before"] != anon || in["returned"] == anon || in["after"] != in["returned"] || in["sameObject"] != "true" {
			t.Fatalf("login: %v (session before %s): want changeSessionId's ID as getId() at once", in, anon)
		}
		key := b.cookie()
		if key != in["after"] {
			t.Fatalf("login: cookie %q, want the ID the app drew, %q", key, in["after"])
		}
		if s.stored(t, anon) != nil {
			t.Fatalf("the session before login is still in the store")
		}
		if st := s.stored(t, key); st == nil || st.Attributes["user"] != `"ann"` || st.Attributes["pojun-2etech"] == "" {
			t.Fatalf("the store holds %+v after login: want user and the attributes before login", st)
		}
		seen := map[string]bool{}
		for i := 0; i < 4 || len(seen) < 2 && i < 30; i++ {
			m, server := b.facts("/whoami.jsp")
			if m["user"] != "ann" || m["id"] != key || m["new"] != "false" || m["requested"] != key || m["requestedValid"] != "true" {
				t.Fatalf("after login, request %d (%s): %v", i, server, m)
			}
			seen[server] = true
		}
		if len(seen) != 2 {
			t.Fatalf("logged in requests reached %v, want both Tomcats", seen)
		}
		// The ID before login is worthless (session fixation).
		fixated := s.browser(t)
		fixated.c.Jar.SetCookies(mustURL(s.base), []*http.Cookie{{Name: "SPSESSIONID", Value: anon}})
		if m, _ := fixated.facts("/whoami.jsp"); m["user"] != "null" || m["id"] == anon || m["new"] != "true" || m["requested"] != "null" {
			t.Fatalf("the pre-login ID still works: %v", m)
		}
		out, _ := b.facts("/logout.jsp")
		if out["old"] != key || out["gone"] != "true" || out["invalidatedRefuses"] != "true" {
			t.Fatalf("logout: %v", out)
		}
		if b.cookie() != "" || s.stored(t, key) != nil {
			t.Fatalf("logout: cookie %q, store %+v: want the session ended", b.cookie(), s.stored(t, key))
		}
		if m, _ := b.facts("/whoami.jsp"); m["user"] != "null" || m["new"] != "true" {
			t.Fatalf("after logout: %v", m)
		}
		// invalidate() then a new session with a flash message: the ID the
		// app saw is the one the proxy stored it under.
		b.facts("/login.jsp?user=ann")
		key = b.cookie()
		out, _ = b.facts("/logout.jsp?message=bye")
		if out["next"] == "" || b.cookie() != out["next"] || s.stored(t, key) != nil {
			t.Fatalf("logout with a message: %v, cookie %q -> %q, old session %+v", out, key, b.cookie(), s.stored(t, key))
		}
		if st := s.stored(t, out["next"]); st == nil || len(st.Attributes) != 1 || st.Attributes["message"] != `"bye"` {
			t.Fatalf("the session after logout holds %+v, want the message alone", st)
		}
	})

	t.Run("typed values shared with Flask", func(t *testing.T) {
		t.Parallel()
		b := s.browser(t)
		if m, _ := b.facts("/typed.jsp"); m["obj"] != "refused" {
			t.Fatalf("a value JSON cannot hold: %v, want refused", m)
		}
		st := s.stored(t, b.cookie())
		if st == nil || st.Attributes["pojun-2etech"] != `"Jos%C3%A9 %F0%9F%99%82"` || st.Attributes["user-49d"] != "3" ||
			st.Attributes["cart"] != `[1,"two",3.5,null]` || st.Attributes["prefs"] != `{"items":[1,2],"ok":true,"name":"Zo%C3%AB"}` {
			t.Fatalf("the store holds %+v: want the section 13 encodings", st)
		}
		if _, ok := st.Attributes["obj"]; ok {
			t.Fatalf("the refused value reached the store: %+v", st)
		}
		// Written by Java, read by Python with its types.
		resp, err := b.c.Get(s.base + "/flask/dump")
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Attrs map[string]json.RawMessage `json:"attrs"`
		}
		json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		for name, want := range map[string]string{
			"pojun.tech": `["str","José 🙂"]`,
			"userId":     `["int",3]`,
			"big":        `["int",1099511627776]`,
			"cart":       `["list",[1,"two",3.5,null]]`,
			"prefs":      `["dict",{"items":[1,2],"ok":true,"name":"Zoë"}]`,
		} {
			if !sameJSON(page.Attrs[name], want) {
				t.Errorf("Flask reads %s = %s, want %s", name, page.Attrs[name], want)
			}
		}
		// Written by Python (and a value in no adapter's encoding), read by
		// Java with its types on both Tomcats.
		b2 := s.browser(t)
		for _, p := range []string{"/flask/typed", "/flask/raw"} {
			resp, err := b2.c.Get(s.base + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		want := "bad|String|%ZZ{not json\n" +
			"cart|ArrayList|[1, two, 3.5, null]\n" +
			"pojun.tech|String|José 🙂\n" +
			"prefs|LinkedHashMap|{items=[1, 2], ok=true, name=Zoë}\n" +
			"userId|Integer|3\n"
		seen := map[string]bool{}
		for i := 0; i < 2 || len(seen) < 2 && i < 30; i++ {
			body, server := b2.get("/dump.jsp")
			if body != want {
				t.Fatalf("%s reads the Flask session as\n%s\nwant\n%s", server, body, want)
			}
			seen[server] = true
		}
		if len(seen) != 2 {
			t.Fatalf("dump.jsp answered from %v, want both Tomcats", seen)
		}
	})

	t.Run("changes after output, before a redirect, before a forward", func(t *testing.T) {
		t.Parallel()
		b := s.browser(t)
		// 20 KB: past JSP's own 8 KiB buffer, within the adapter's 256 KiB.
		b.get("/late.jsp?size=20000")
		if st := s.stored(t, b.cookie()); st == nil || st.Attributes["early"] != `"yes"` || st.Attributes["late"] != `"yes"` {
			t.Fatalf("a change after 20 KB of output: the store holds %+v, want early and late", st)
		}
		// 400 KB: the session headers went when the adapter's buffer
		// filled; the change after that is lost, as the README says.
		b2 := s.browser(t)
		body, _ := b2.get("/late.jsp?size=400000")
		if len(body) < 400000 {
			t.Fatalf("the large page came back with %d bytes", len(body))
		}
		if st := s.stored(t, b2.cookie()); st == nil || st.Attributes["early"] != `"yes"` || st.Attributes["late"] != "" {
			t.Fatalf("a change after 400 KB of output: the store holds %+v, want early only (documented)", st)
		}
		// The log says so (the adapter logs when the page returns, which
		// may be after the client has read the answer).
		testutil.WaitFor(t, 10*time.Second, "the lost change in Tomcat's log", func() bool {
			return s.logged("a session change after the response started was not saved")
		})
		// A forward, and code that goes around the adapter to Tomcat's own
		// session: no JSESSIONID (get checks every answer for one).
		b4 := s.browser(t)
		if m, _ := b4.facts("/forward.jsp"); m["user"] != "via-forward" || m["id"] != b4.cookie() {
			t.Fatalf("after a forward: %v, cookie %q", m, b4.cookie())
		}
		if m, _ := b4.facts("/container.jsp"); m["ownIsOther"] != "true" || m["url"] != "whoami.jsp" || m["wrapped"] != "sessionproxy.servlet.ProxiedRequest" {
			t.Fatalf("Tomcat's own session: %v", m)
		}
		// An app of its own web.xml (metadata-complete, the listener
		// declared there): its own filter sees the proxy's session.
		for i, seen := 0, map[string]bool{}; len(seen) < 2; i++ {
			if i == 30 {
				t.Fatalf("/legacy/ answered from %v only", seen)
			}
			resp, err := b4.c.Get(s.base + "/legacy/whoami.jsp")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := b4.cookie() + " sessionproxy.servlet.ConcreteSession"
			if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Session") != want || !strings.Contains(string(body), "id="+b4.cookie()) {
				t.Fatalf("/legacy/whoami.jsp: %d, the app's filter saw %q (want %q): %q", resp.StatusCode, resp.Header.Get("X-Seen-Session"), want, body)
			}
			seen[resp.Header.Get("Server")] = true
		}
		b3 := s.browser(t)
		if m, _ := b3.facts("/redirect.jsp"); m["id"] != b3.cookie() {
			t.Fatalf("after the redirect: %v, cookie %q", m, b3.cookie())
		}
		if st := s.stored(t, b3.cookie()); st == nil || st.Attributes["flash"] != `"saved"` {
			t.Fatalf("a change before sendRedirect: the store holds %+v", st)
		}
	})

	t.Run("a session up to max_size, and over it is the container's 500", func(t *testing.T) {
		t.Parallel()
		b := s.browser(t)
		// 60 KB of attribute: within the proxy's default max_size (64 KiB),
		// stored, and sent back with the next requests.
		b.get("/large.jsp?size=60000")
		if st := s.stored(t, b.cookie()); st == nil || len(st.Attributes["large"]) != 60002 {
			t.Fatalf("a 60 KB attribute was not stored")
		}
		for i := 0; i < 2; i++ {
			if m, _ := b.facts("/whoami.jsp"); m["id"] != b.cookie() {
				t.Fatalf("request %d with a 60 KB session: %v", i, m)
			}
		}
		// Over max_size: the adapter counts the session as the proxy
		// stores it (15 bytes of overhead, "large" 1+5, its quoted value
		// 3+n+2) and fails the request with an IllegalStateException
		// before anything is committed: Tomcat's error page (500), its log
		// names the exception, and the store is as it was.
		atLimit := 64<<10 - 15 - 6 - 5
		get := func(b *browser, size int) (int, string) {
			resp, err := b.c.Get(fmt.Sprintf("%s/large.jsp?size=%d", s.base, size))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		if code, body := get(b, atLimit+1); code != http.StatusInternalServerError || !strings.Contains(body, "IllegalStateException") {
			t.Fatalf("a session over max_size: %d %q, want Tomcat's 500 page", code, body)
		}
		if !s.logged("over the proxy's max_size of 65536; it was not saved") {
			t.Fatal("Tomcat's log does not name the exception")
		}
		if st := s.stored(t, b.cookie()); st == nil || len(st.Attributes["large"]) != 60002 {
			t.Fatalf("after the refused update the store holds %+v", st)
		}
		// At the adapter's limit the proxy's own count (with the expiry)
		// is over: the adapter is never stricter, and between the two the
		// proxy's 502 remains.
		if code, _ := get(b, atLimit); code != http.StatusBadGateway {
			t.Fatalf("a session at the adapter's limit: %d, want the proxy's 502", code)
		}
		if code, _ := get(b, atLimit-32); code != 200 {
			t.Fatalf("32 bytes under the adapter's limit: %d", code)
		}
		if st := s.stored(t, b.cookie()); st == nil || len(st.Attributes["large"]) != atLimit-32+2 {
			t.Fatalf("32 bytes under the adapter's limit the store does not hold it")
		}
		// A new session over it: no session, no cookie.
		b2 := s.browser(t)
		if code, _ := get(b2, 70000); code != http.StatusInternalServerError || b2.cookie() != "" {
			t.Fatalf("a new 70 KB session: %d, cookie %q; want 500 and no session", code, b2.cookie())
		}
	})
}

func sameJSON(got json.RawMessage, want string) bool {
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal([]byte(want), &w) != nil {
		return false
	}
	return fmt.Sprint(g) == fmt.Sprint(w)
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
