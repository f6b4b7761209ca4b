package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// More clients at once than PHP-FPM has workers (4): with connections
// kept open (KEEP_CONN), each worker stays pinned to an idle kept
// connection and the requests over the count waited in PHP-FPM's listen
// queue until the proxy's idle timeout (4s). By default connections are
// closed after each request, as nginx does, and all are served at once;
// keep_conn: true keeps them, for pools with a worker per connection.
func TestFastCGIMoreClientsThanWorkers(t *testing.T) {
	fpm := phpSite(t)
	for _, keep := range []bool{false, true} {
		conf := phpConfig("fastcgi://"+fpm.Addr, fpm.Root)
		clients := 12
		if keep {
			// Fewer clients than workers: kept connections never
			// outnumber them (max_conns would answer 503, not queue).
			conf += "  keep_conn: true\n"
			clients = 3
		}
		p := startProcess(t, conf)
		var wg sync.WaitGroup
		errs := make(chan string, clients*5)
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &http.Client{Timeout: 10 * time.Second}
				for range 5 {
					if code, body := fetchBody(t, c, "http://"+p.addr+"/me.php"); code != 200 || body != "user=-" {
						errs <- fmt.Sprintf("%d %q", code, body)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		took := time.Since(start)
		for e := range errs {
			t.Errorf("keep_conn %v: %s", keep, e)
		}
		t.Logf("keep_conn %v: %d clients x 5 requests in %v", keep, clients, took)
		if took > 2*time.Second {
			t.Fatalf("keep_conn %v: %d clients x 5 requests took %v: requests waited behind idle connections", keep, clients, took)
		}
	}
}

// HEAD runs the script and answers its head with no body, and the
// connection serves the next request (kept and not).
func TestFastCGIHead(t *testing.T) {
	fpm := phpSite(t)
	for _, extra := range []string{"", "  keep_conn: true\n"} {
		p := startProcess(t, phpConfig("fastcgi+unix:"+fpm.Socket, fpm.Root)+extra)
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "HEAD /big.php?mib=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /me.php HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		got := string(b)
		head, rest, _ := strings.Cut(got, "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 200") || !strings.Contains(head, "application/octet-stream") ||
			!strings.HasPrefix(rest, "HTTP/1.1 200") || !strings.HasSuffix(rest, "\r\n\r\n6\r\nuser=-\r\n0\r\n\r\n") {
			t.Fatalf("keep_conn %q: %q", extra, got)
		}
	}
}
