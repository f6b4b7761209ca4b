package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
)

// FuzzUpgradeAnswer gives the handshake arbitrary bytes as the backend's
// answer. Whatever they are, a tunnel starts only on a 101 that switches to
// websocket, the head the client would get reads back with net/http's
// parser as exactly one such 101, and the bytes relayed after it are the
// ones that followed the backend's head.
func FuzzUpgradeAnswer(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\nX-Session-Set-A: 1\n\nrest",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	p := &Proxy{Settings: Settings{Metrics: NewMetrics()}}
	b := &balancer.Backend{URL: "http://backend", Addr: "backend:80"}
	f.Fuzz(func(t *testing.T, answer []byte) {
		proxySide, backendSide := net.Pipe()
		defer proxySide.Close()
		go func() {
			defer backendSide.Close()
			backendSide.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(backendSide)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			backendSide.Write(answer)
		}()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI("/chat")
		ctx.Request.Header.SetHost("example.com")
		ctx.Request.Header.Set("Connection", "Upgrade")
		ctx.Request.Header.Set("Upgrade", "websocket")
		tun, perr := p.exchange(&ctx, b, proxySide, 2*time.Second)
		resp := &ctx.Response
		defer resp.Reset() // closes a streamed answer's body
		switch {
		case perr != nil:
			if tun != nil {
				t.Fatal("an error and a tunnel")
			}
			return
		case tun == nil:
			if resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
				t.Fatal("a 101 passed on as an ordinary answer")
			}
			return
		}
		defer tun.backend.Close()
		resp.Header.SetCanonical(hdrConnection, valueUpgrade)
		resp.Header.SetCanonical(hdrUpgrade, valueWS)
		head := resp.Header.AppendBytes(nil)
		br := bufio.NewReader(bytes.NewReader(head))
		got, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("the head for the client does not parse: %v\n%q", err, head)
		}
		if got.StatusCode != 101 || !strings.EqualFold(got.Header.Get("Upgrade"), "websocket") || br.Buffered() != 0 {
			t.Fatalf("the head for the client is not one 101 to websocket: %q", head)
		}
		// What follows the backend's head, by net/http's reading of it.
		abr := bufio.NewReader(bytes.NewReader(answer))
		orig, err := http.ReadResponse(abr, nil)
		if err != nil {
			return // fasthttp took what net/http would not; the client gets the head above
		}
		for orig.StatusCode == 100 {
			if orig, err = http.ReadResponse(abr, nil); err != nil {
				return
			}
		}
		rest, _ := io.ReadAll(abr)
		if !bytes.HasPrefix(rest, tun.backendPending) {
			t.Fatalf("relayed %q after the 101, but the backend's head was followed by %q", tun.backendPending, rest)
		}
	})
}
