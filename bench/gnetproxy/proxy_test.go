package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/fasthttp"
)

// booted is the proxy with its engine reported, so that a test can stop it.
type booted struct {
	*proxy
	engines chan gnet.Engine
}

func (b booted) OnBoot(e gnet.Engine) gnet.Action {
	b.engines <- e
	return gnet.None
}

// startProxy runs a gnetproxy on a free loopback port in front of a real
// fasthttp backend that answers with the request's method, URI, body and
// a header of its own, and returns the proxy's address.
func startProxy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Backend", "1")
		ctx.WriteString(string(ctx.Method()) + " " + string(ctx.RequestURI()) + " " + string(ctx.PostBody()))
	}}
	go be.Serve(ln)
	t.Cleanup(func() { be.Shutdown() })

	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pln.Addr().String()
	pln.Close()
	b := booted{newProxy([]string{ln.Addr().String()}, 4), make(chan gnet.Engine, 1)}
	done := make(chan error, 1)
	go func() { done <- run(b, addr) }()
	var eng gnet.Engine
	select {
	case eng = <-b.engines:
	case err := <-done:
		t.Fatalf("gnet: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gnet did not boot")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng.Stop(ctx)
		<-done
		close(b.jobs)
	})
	return addr
}

// readResponses reads n responses off c.
func readResponses(t *testing.T, c net.Conn, n int) []string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []string
	for range n {
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil {
			t.Fatalf("after %d responses: %v", len(out), err)
		}
		out = append(out, string(resp.Body()))
		if string(resp.Header.Peek("X-Backend")) != "1" {
			t.Errorf("response %d without the backend's header", len(out))
		}
	}
	return out
}

// TestPipelinedInPieces sends three pipelined requests cut into 5-byte
// writes: each is forwarded whole, and the answers come back in order.
func TestPipelinedInPieces(t *testing.T) {
	addr := startProxy(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" +
		"GET /c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := 0; i < len(in); i += 5 {
		if _, err := c.Write([]byte(in[i:min(i+5, len(in))])); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // let the proxy see the pieces apart
	}
	got := readResponses(t, c, 3)
	want := []string{"GET /a ", "POST /b xyz", "GET /c?q=1 "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestPipelinedInOneWrite sends 50 requests in one write.
func TestPipelinedInOneWrite(t *testing.T) {
	addr := startProxy(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var in strings.Builder
	var want []string
	for i := range 50 {
		uri := "/r" + strings.Repeat("x", i)
		in.WriteString("GET " + uri + " HTTP/1.1\r\nHost: x\r\n\r\n")
		want = append(want, "GET "+uri+" ")
	}
	if _, err := io.WriteString(c, in.String()); err != nil {
		t.Fatal(err)
	}
	if got := readResponses(t, c, 50); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestConnectionClose: the answer to a request with Connection: close
// says so and the connection ends after it.
func TestConnectionClose(t *testing.T) {
	addr := startProxy(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(all); !strings.Contains(s, "\r\nConnection: close\r\n") || !strings.HasSuffix(s, "GET /a ") {
		t.Fatalf("got %q", s)
	}
}

// TestBadRequests: what the prototype cannot frame gets an error status
// and the connection is closed, nothing forwarded.
func TestBadRequests(t *testing.T) {
	addr := startProxy(t)
	for _, tt := range []struct{ in, status string }{
		{"GET /a HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("y", 9000), "431"},
		{"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "501"},
		{"GET /a HTTP/1.1\r\n\r\n", "400"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tt.in)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		all, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(all), "HTTP/1.1 "+tt.status+" ") {
			t.Errorf("%.40q: got %q, want %s", tt.in, all, tt.status)
		}
	}
}
