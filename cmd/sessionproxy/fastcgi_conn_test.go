package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	"sessionproxy/internal/rawtcp"
)

// TestFastCGIServerPortFromListener: SERVER_PORT and SERVER_ADDR are the
// listener's that accepted the connection, and REMOTE_PORT the client's,
// as nginx's fastcgi_params set them ($server_port, $server_addr,
// $remote_port), whatever port the client writes in Host (PHP apps build
// their absolute URLs from SERVER_PORT); SERVER_NAME is the Host's name
// and HTTP_HOST the Host as sent. A client's own line of the header that
// carries them to the transport changes nothing and is not passed on.
// Real PHP-FPM, the shipped defaults, the requests as raw bytes.
func TestFastCGIServerPortFromListener(t *testing.T) {
	fpm := phpSite(t)
	p := startProcess(t, phpConfig("fastcgi://"+fpm.Addr, fpm.Root))
	_, listenPort, _ := net.SplitHostPort(p.addr)
	for _, tc := range []struct{ name, host, serverName string }{
		{"forged port", "forged.example:8443", "forged.example"},
		{"no port", "forged.example", "forged.example"},
		{"port 443", "forged.example:443", "forged.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawtcp.Dial(t, p.addr)
			defer c.Close()
			io.WriteString(c, "GET /echo.php HTTP/1.1\r\nHost: "+tc.host+
				"\r\nX-Sessionproxy-Fastcgi-Conn: 10.9.9.9 1 2\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			got := fields(string(b))
			want := map[string]string{
				"SERVER_PORT": listenPort, "SERVER_ADDR": "127.0.0.1", "SERVER_NAME": tc.serverName,
				"REMOTE_PORT":     strconv.Itoa(c.LocalAddr().(*net.TCPAddr).Port),
				"HTTP_HOST":       tc.host,
				"REDIRECT_STATUS": "200", "HTTPS": "-", "HTTP_X_SESSIONPROXY_FASTCGI_CONN": "-",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
		})
	}
}
