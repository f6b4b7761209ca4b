package h2front

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// FuzzValidRequest: an h2 request that validRequest accepts is written as
// exactly one HTTP/1.1 request that says the same: its method, target,
// host and field value read back unchanged, and nothing left over that
// could be read as a second request.
func FuzzValidRequest(f *testing.F) {
	f.Add("GET", "/", "example.com", "x-a", "1")
	f.Add("GET", "/a b", "example.com", "x-a", "1")
	f.Add("GET", "/", "example.com", "x-a", "1\r\nX-Injected: 1")
	f.Add("GET", "/", "example.com\r\nX: 1", "x-a", "1")
	f.Add("GET /x HTTP/1.1\r\n", "/", "h", "x-a", "1")
	f.Add("POST", "*", "h:8443", "cookie", "a=1; b=2")
	f.Add("GET", "/", "h", "x-a", " padded ")
	f.Add("GET", "/", "h", "transfer-encoding", "chunked")
	f.Add("GET", "/", "h", "content-length", "5")
	f.Add("GET", "/", "h", "x a", "1")
	f.Fuzz(func(t *testing.T, method, uri, host, name, value string) {
		r := &http.Request{Method: method, RequestURI: uri, Host: host, Header: http.Header{}, Body: http.NoBody}
		r.Header[http.CanonicalHeaderKey(name)] = []string{value}
		if !validRequest(r) {
			return
		}
		var buf bytes.Buffer
		if err := writeRequest(&buf, r); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(bytes.NewReader(buf.Bytes()))
		got, err := http.ReadRequest(br)
		if err != nil {
			// Go's parser is stricter than h2 in places (a Host it
			// cannot parse); what matters is that it is one request.
			return
		}
		if got.Method != method || got.RequestURI != uri || got.Host != host {
			t.Fatalf("%q %q %q became %q %q %q", method, uri, host, got.Method, got.RequestURI, got.Host)
		}
		k := http.CanonicalHeaderKey(name)
		switch k {
		case "Host", "Content-Length", "Te", "Expect":
		default:
			if v := got.Header.Values(k); len(v) != 1 || v[0] != value {
				t.Fatalf("%s: %q became %q", k, value, v)
			}
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Fatalf("%q left after the request", rest)
		}
	})
}

// TestValidRequestRefuses: the RFC 9113 §8.2-8.3 refusals, one by one.
func TestValidRequestRefuses(t *testing.T) {
	ok := func() *http.Request {
		return &http.Request{Method: "GET", RequestURI: "/", Host: "h", Header: http.Header{"X-A": {"1"}}}
	}
	if !validRequest(ok()) {
		t.Fatal("a plain request refused")
	}
	for name, change := range map[string]func(*http.Request){
		"CR LF in a value":  func(r *http.Request) { r.Header["X-A"] = []string{"1\r\nX: 2"} },
		"NUL in a value":    func(r *http.Request) { r.Header["X-A"] = []string{"1\x00"} },
		"space at the end":  func(r *http.Request) { r.Header["X-A"] = []string{"1 "} },
		"connection":        func(r *http.Request) { r.Header["Connection"] = []string{"close"} },
		"upgrade":           func(r *http.Request) { r.Header["Upgrade"] = []string{"websocket"} },
		"transfer-encoding": func(r *http.Request) { r.Header["Transfer-Encoding"] = []string{"chunked"} },
		"te gzip":           func(r *http.Request) { r.Header["Te"] = []string{"gzip"} },
		"space in path":     func(r *http.Request) { r.RequestURI = "/a b" },
		"relative path":     func(r *http.Request) { r.RequestURI = "a" },
		"method not token":  func(r *http.Request) { r.Method = "GET /" },
		"host with slash":   func(r *http.Request) { r.Host = "h/x" },
		"name not token":    func(r *http.Request) { r.Header["X A"] = []string{"1"} },
	} {
		r := ok()
		change(r)
		if validRequest(r) {
			t.Errorf("%s: accepted", name)
		}
	}
}
