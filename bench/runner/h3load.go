package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// h3load is the HTTP/3 counterpart of h2load (Debian's h2load speaks no
// HTTP/3): conns QUIC connections, each with streams requests in flight
// (one goroutine per stream slot, as h2load -m), asking url for d. It counts
// the 200 answers whose body was read; any other outcome is a failure.
// caFile is the PEM the server's certificate is checked against.
func h3load(url, caFile string, conns, streams int, d time.Duration) (requests int64, rps float64, err error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return 0, 0, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		// One Transport keeps one QUIC connection per host: a Transport
		// per connection gives conns connections.
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
		defer tr.Close()
		c := &http.Client{Transport: tr}
		for range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
					resp, err := c.Do(req)
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != 200 {
							err = fmt.Errorf("status %s", resp.Status)
						}
					}
					if ctx.Err() != nil {
						return // cut off by the end of the run: not counted
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					ok.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	requests = ok.Load()
	if f := failed.Load(); requests == 0 || f > (requests+f)/100 {
		return 0, 0, fmt.Errorf("h3load: %d of %d requests failed, first: %v", f, requests+f, firstErr.Load())
	}
	return requests, float64(requests) / elapsed.Seconds(), nil
}
