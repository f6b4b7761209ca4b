package proxy

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkStatic serves a small file, a HEAD and a 304 from a static
// route with the default access log, as fasthttp's server would: the
// body is written out and closed. Not in make allocs: a file lookup
// allocates (os.Root's Lstat and open, about 23 allocs/op; 35 with the
// EvalSymlinks lookup it replaced, A/B against e8dbac2).
func BenchmarkStatic(b *testing.B) {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "static", "app.css"), []byte(strings.Repeat("x", 4096)), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := NewStatic(dir, &Recorder{Metrics: NewMetrics(), AccessLog: testAccessLog})
	if err != nil {
		b.Fatal(err)
	}
	var etag []byte
	for _, bc := range []struct{ name, method, inm string }{
		{"GET", "GET", ""}, {"HEAD", "HEAD", ""}, {"304", "GET", "etag"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(bc.method)
			ctx.Request.SetRequestURI("/static/app.css")
			if bc.inm != "" {
				ctx.Request.Header.SetBytesV("If-None-Match", etag)
			}
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.Header.Del("X-Request-Id")
				s.ServeHTTP(&ctx)
				if ctx.Response.StatusCode() >= 400 {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
				etag = append(etag[:0], ctx.Response.Header.Peek("ETag")...)
				if err := ctx.Response.BodyWriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
				ctx.Response.Reset()
			}
		})
	}
}
