package main

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

var parseTests = []struct {
	name       string
	in         string
	n          int // bytes of the first request; 0: incomplete
	err        error
	anyErr     bool
	method     string
	uri, body  string
	closeAfter bool
}{
	{name: "get", in: "GET /plain HTTP/1.1\r\nHost: a\r\n\r\n", n: 32, method: "GET", uri: "/plain"},
	{name: "pipelined: first only", in: "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", n: 28, method: "GET", uri: "/a"},
	{name: "bare LF ends no block", in: "GET /a HTTP/1.1\nHost: a\n\n"},
	{name: "leading bare LF", in: "\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n", n: 29, method: "GET", uri: "/a"},
	{name: "no headers", in: "GET /a HTTP/1.0\r\n\r\n", n: 19, method: "GET", uri: "/a", closeAfter: true},
	{name: "leading empty lines", in: "\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n", n: 32, method: "GET", uri: "/a"},
	{name: "body", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET", n: 53, method: "POST", uri: "/p", body: "hello"},
	{name: "body incomplete", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel"},
	{name: "header incomplete", in: "GET /a HTTP/1.1\r\nHost: a\r\n"},
	{name: "request line only", in: "GET /a HTTP/1.1"},
	{name: "connection close", in: "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", n: 47, method: "GET", uri: "/a", closeAfter: true},
	{name: "chunked", in: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", err: errChunked},
	{name: "body too large", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", err: errBodyTooLarge},
	{name: "header too large", in: "GET /a HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 9000), err: errHeaderTooLarge},
	{name: "no host in HTTP/1.1", in: "GET /a HTTP/1.1\r\n\r\n", anyErr: true},
	{name: "garbage", in: "\x00\x01\x02 nonsense\r\n\r\n", anyErr: true},
}

func TestParserNext(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParser(8<<10, 1<<20)
			var req fasthttp.Request
			n, err := p.next([]byte(tt.in), &req)
			switch {
			case tt.err != nil || tt.anyErr:
				if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) {
					t.Fatalf("next = %d, %v; want error %v", n, err, tt.err)
				}
				return
			case err != nil:
				t.Fatalf("next: %v", err)
			case n != tt.n:
				t.Fatalf("next took %d bytes, want %d", n, tt.n)
			case n == 0:
				return
			}
			if got := string(req.Header.Method()); got != tt.method {
				t.Errorf("method %q, want %q", got, tt.method)
			}
			if got := string(req.RequestURI()); got != tt.uri {
				t.Errorf("uri %q, want %q", got, tt.uri)
			}
			if got := string(req.Body()); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			if got := req.Header.ConnectionClose(); got != tt.closeAfter {
				t.Errorf("connection close %v, want %v", got, tt.closeAfter)
			}
		})
	}
}

// TestParserEverySplit feeds three pipelined requests as an event loop
// sees them, cut at every byte: each prefix either completes the next
// request or asks for more, and the requests come out whole, in order.
func TestParserEverySplit(t *testing.T) {
	in := "GET /a HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz" +
		"GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
	want := []string{"GET /a ", "POST /b xyz", "GET /c "}
	p := newParser(8<<10, 1<<20)
	var req fasthttp.Request
	for cut := 1; cut < len(in); cut++ {
		var got []string
		var pending []byte
		for _, chunk := range []string{in[:cut], in[cut:]} {
			pending = append(pending, chunk...)
			for {
				n, err := p.next(pending, &req)
				if err != nil {
					t.Fatalf("cut %d: %v", cut, err)
				}
				if n == 0 {
					break
				}
				got = append(got, string(req.Header.Method())+" "+string(req.RequestURI())+" "+string(req.Body()))
				pending = pending[n:]
			}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") || len(pending) != 0 {
			t.Fatalf("cut %d: got %q, %d bytes left; want %q", cut, got, len(pending), want)
		}
	}
}

// FuzzParserNext checks the framing against fasthttp's own reader: a
// request next accepts is one fasthttp.Request.Read reads the same way,
// from exactly the bytes next says it took, and every shorter prefix of
// it asks for more instead of failing.
func FuzzParserNext(f *testing.F) {
	for _, tt := range parseTests {
		f.Add([]byte(tt.in))
	}
	p := newParser(8<<10, 1<<20)
	var req, ref fasthttp.Request
	f.Fuzz(func(t *testing.T, in []byte) {
		n, err := p.next(in, &req)
		if err != nil || n == 0 {
			return
		}
		if n > len(in) {
			t.Fatalf("took %d of %d bytes", n, len(in))
		}
		ref.Reset()
		if err := ref.Read(bufio.NewReaderSize(bytes.NewReader(in[:n]), 16<<10)); err != nil {
			t.Fatalf("fasthttp rejects what next took (%q): %v", in[:n], err)
		}
		if !bytes.Equal(ref.Header.Method(), req.Header.Method()) || !bytes.Equal(ref.RequestURI(), req.RequestURI()) || !bytes.Equal(ref.Body(), req.Body()) {
			t.Fatalf("next read %q %q %q, fasthttp %q %q %q", req.Header.Method(), req.RequestURI(), req.Body(), ref.Header.Method(), ref.RequestURI(), ref.Body())
		}
		for k := range n {
			if m, err := p.next(in[:k], &req); m != 0 || err != nil {
				t.Fatalf("prefix of %d of %d bytes: %d, %v; want more", k, n, m, err)
			}
		}
	})
}
