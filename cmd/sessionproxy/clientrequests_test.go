package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/rawtcp"
)

func TestUnderscoresInHeadersConfig(t *testing.T) {
	got := make(chan http.Header, 2)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	t.Cleanup(b.Close)
	for _, on := range []bool{false, true} {
		p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(b.URL))+fmt.Sprintf("underscores_in_headers: %v\n", on))
		resp, _ := rawtcp.Exchange(t, p.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Api_Key: k\r\nX_Session_Attr_Role: admin\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("underscores_in_headers %v: status %d", on, resp.StatusCode)
		}
		h := <-got
		var names []string
		for k := range h {
			names = append(names, strings.ToLower(k))
		}
		all := strings.Join(names, " ")
		if strings.Contains(all, "x-api_key") != on || strings.Contains(all, "x_session") {
			t.Errorf("underscores_in_headers %v: backend got %s", on, all)
		}
	}
}

func TestOversizedBodyGetsReadable413(t *testing.T) {
	b, hits := namedBackend(t, "A", 0)
	p := startProcess(t, fmt.Sprintf(baseConfig, backendsYAML(b.URL))+"max_body: 64KiB\n")
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
			piece := make([]byte, 32<<10)
			for n := 0; n < 1<<20; n += len(piece) {
				if _, err := c.Write(piece); err != nil {
					return
				}
			}
		}()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 413 ") || !strings.HasSuffix(string(got), "\r\n\r\nrequest body too large\n") {
			t.Fatalf("try %d: %v, read %q", i, err, got)
		}
	}
	if hits.Load() != 0 {
		t.Fatal("an oversized body reached the backend")
	}
}
