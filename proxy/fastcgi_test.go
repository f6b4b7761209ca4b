package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// Which script a normalised path runs: the first ".php" that ends a
// segment with a name before it.
func TestSplitScript(t *testing.T) {
	for path, want := range map[string][2]string{
		"/index.php":     {"/index.php", ""},
		"/a/b.php/c/d":   {"/a/b.php", "/c/d"},
		"/a.php.bak":     {"", ""},
		"/a.phpx/b.php":  {"/a.phpx/b.php", ""},
		"/.php":          {"", ""},
		"/.php/x.php":    {"/.php/x.php", ""},
		"/a/":            {"", ""},
		"/x.php/y.php/z": {"/x.php", "/y.php/z"},
		"/up.PHP":        {"", ""},
		"/":              {"", ""},
		"/dir.php/":      {"/dir.php", "/"},
	} {
		s, p := splitScript([]byte(path))
		if string(s) != want[0] || string(p) != want[1] {
			t.Errorf("%s: %q %q, want %q %q", path, s, p, want[0], want[1])
		}
	}
}

// FuzzSplitScript: the script and PATH_INFO always make the path back,
// the script names a .php segment, and PATH_INFO starts a segment.
func FuzzSplitScript(f *testing.F) {
	for _, s := range []string{"/index.php", "/a/b.php/c", "/.php", "/a.php.php/x.php", "/%2e.php", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		s, p := splitScript([]byte(path))
		if s == nil {
			if p != nil {
				t.Fatal("PATH_INFO without a script")
			}
			return
		}
		if string(s)+string(p) != path || len(s) < 5 || string(s[len(s)-4:]) != ".php" || s[len(s)-5] == '/' ||
			(len(p) > 0 && p[0] != '/') {
			t.Fatalf("%q split as %q %q", path, s, p)
		}
	})
}

// Which script a normalised path names in a pool with script: path: the
// whole path, when its last segment ends in ".php" after a name.
func TestWholeScript(t *testing.T) {
	for path, want := range map[string]string{
		"/index.php":        "/index.php",
		"/a/b.php":          "/a/b.php",
		"/a.php/rest":       "",
		"/a.php/":           "",
		"/a.php/b.php":      "/a.php/b.php",
		"/.php":             "",
		"/a/.php":           "",
		"/a.php.":           "",
		"/a.PHP":            "",
		"/a.php%2Fx":        "",
		"/x%2Fa.php":        "/x%2Fa.php", // refused by params: a "%" in a script's name
		"/":                 "",
		"":                  "",
		"/a.phpx":           "",
		"/a.php/rest/b.php": "/a.php/rest/b.php",
	} {
		if got := string(wholeScript([]byte(path))); got != want {
			t.Errorf("%q: %q, want %q", path, got, want)
		}
	}
}

// FuzzWholeScript: a script is the whole path, its last segment a name
// ending in ".php"; a path with PATH_INFO past a ".php" segment names none.
func FuzzWholeScript(f *testing.F) {
	for _, s := range []string{"/index.php", "/a.php/rest", "/.php", "/a.php/b.php", "/a.php.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		s := wholeScript([]byte(path))
		if s == nil {
			return
		}
		name := path[strings.LastIndexByte(path, '/')+1:]
		if string(s) != path || !strings.HasSuffix(name, ".php") || len(name) < 5 {
			t.Fatalf("%q: script %q", path, s)
		}
	})
}

// addrConn is a connection that has only its two addresses.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// FuzzFastCGIConn: whatever the listener's and the client's addresses
// and whatever line of the header a client sent, the transport reads
// back the listener's address and port and the client's port
// (SERVER_ADDR, SERVER_PORT, REMOTE_PORT), never the client's line; and
// no value of the header makes fastcgiConn panic.
func FuzzFastCGIConn(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(8080), uint16(50000), "10.9.9.9 1 2")
	f.Add([]byte(net.IPv6loopback), uint16(443), uint16(0), "")
	f.Add([]byte{0, 0, 0, 0}, uint16(0), uint16(1), "  ")
	f.Fuzz(func(t *testing.T, ip []byte, port, remotePort uint16, forged string) {
		fastcgiConn([]byte(forged))
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		var ctx fasthttp.RequestCtx
		ctx.Init2(addrConn{local: &net.TCPAddr{IP: ip, Port: int(port)}, remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: int(remotePort)}}, nil, false)
		if forged != "" && !strings.ContainsAny(forged, "\r\n\x00") {
			ctx.Request.Header.Set("X-Sessionproxy-Fastcgi-Conn", forged)
		}
		setFastCGIConn(&ctx, nil)
		sa, sp, rp := fastcgiConn(ctx.Request.Header.PeekBytes(hdrFastCGIConn))
		wantRemote := ""
		if remotePort > 0 {
			wantRemote = strconv.Itoa(int(remotePort))
		}
		if string(sa) != addr.Unmap().String() || string(sp) != strconv.Itoa(int(port)) || string(rp) != wantRemote {
			t.Fatalf("%v:%d from %d: read back %q %q %q", addr, port, remotePort, sa, sp, rp)
		}
	})
}
