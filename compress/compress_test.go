package compress

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"

	"sessionproxy/compress/policy"
)

func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<li class=\"item-%d\">Item number %d of the list, %x</li>\n", i%17, i, i*7919)
	}
	return b.Bytes()[:n]
}

// movable is a body stream over bytes, as a static file's is over a file.
type movable struct {
	r      bytes.Reader
	skip   bool
	closed int
}

func (m *movable) Read(p []byte) (int, error) { return m.r.Read(p) }
func (m *movable) SkipNextClose()             { m.skip = true }
func (m *movable) Close() error {
	if m.skip {
		m.skip = false
		return nil
	}
	m.closed++
	return nil
}

// endless is a source that never ends: text, over and over.
type endless struct {
	data []byte
	off  int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.data[e.off:])
	e.off = (e.off + n) % len(e.data)
	return n, nil
}

func newCompressor(tb testing.TB) *Compressor {
	tb.Helper()
	c, err := New(policy.Defaults())
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestStreamClosesSourceOnce: the source of a compressed stream is closed
// once, by the stream, not when the response lets go of it.
func TestStreamClosesSourceOnce(t *testing.T) {
	c := newCompressor(t)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("Accept-Encoding", "gzip")
	src := &movable{}
	src.r.Reset(text(200 << 10))
	ctx.Response.Header.SetContentType("text/plain")
	ctx.Response.SetBodyStream(src, 200<<10)
	c.Apply(&ctx)
	if src.closed != 0 {
		t.Fatalf("source closed %d times while moved into the stream", src.closed)
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := ctx.Response.Write(w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if src.closed != 1 {
		t.Errorf("source closed %d times, want 1", src.closed)
	}
	if !bytes.Contains(out.Bytes(), []byte("Content-Encoding: gzip")) || !bytes.Contains(out.Bytes(), []byte("Transfer-Encoding: chunked")) {
		t.Errorf("response head: %q", out.Bytes()[:min(out.Len(), 300)])
	}
}

// streamHeap returns the heap that n open streams of e hold, each having
// compressed and sent sent bytes, per stream.
func streamHeap(tb testing.TB, e policy.Encoding, n, sent int) uint64 {
	data := text(1 << 20)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// The pools start empty: what is measured is fresh encoders.
	encoderPools[e] = sync.Pool{}
	before := heap()
	streams := make([]*stream, n)
	buf := make([]byte, 4096)
	for i := range streams {
		s := newStream(&endless{data: data}, e, true)
		for got := 0; got < sent; {
			k, err := s.Read(buf)
			if err != nil {
				tb.Fatal(err)
			}
			got += k * 4 // compressed bytes stand for about four times as many
		}
		streams[i] = s
	}
	after := heap()
	for _, s := range streams {
		s.CloseWithError(nil)
	}
	return (after - before) / uint64(n)
}

// TestStreamMemoryBounded: an open compressed stream holds a bounded
// amount of memory, whatever it has sent: the same after 128 KiB as
// after 2 MiB, and under 4 MiB for every encoding.
func TestStreamMemoryBounded(t *testing.T) {
	for _, e := range []policy.Encoding{policy.Zstd, policy.Brotli, policy.Gzip} {
		// Few streams and megabytes: the race detector, under which
		// make test runs it, compresses a hundred times slower.
		short := streamHeap(t, e, 8, 128<<10)
		long := streamHeap(t, e, 8, 2<<20)
		t.Logf("%s: %d KiB per stream after 128 KiB, %d KiB after 2 MiB", e, short>>10, long>>10)
		if long > 4<<20 || long > short+short/2+64<<10 {
			t.Errorf("%s: %d bytes per stream after 2 MiB, %d after 128 KiB", e, long, short)
		}
	}
}

// BenchmarkStreamMemory reports the heap an open compressed stream holds
// (B/stream) with each encoding, 100 streams at a time.
func BenchmarkStreamMemory(b *testing.B) {
	for _, e := range []policy.Encoding{policy.Zstd, policy.Brotli, policy.Gzip} {
		b.Run(e.String(), func(b *testing.B) {
			var per uint64
			for range b.N {
				per = streamHeap(b, e, 100, 256<<10)
			}
			b.ReportMetric(float64(per), "B/stream")
		})
	}
}

// BenchmarkApply is the cost of one response, compressed or not, written
// out: a page held in memory (20 KiB) and a streamed file (300 KiB), with
// no Accept-Encoding (the A side) and with each encoding (the B side).
func BenchmarkApply(b *testing.B) {
	c := newCompressor(b)
	page, file := text(20<<10), text(300<<10)
	w := bufio.NewWriterSize(io.Discard, 16<<10)
	for _, size := range []string{"page20K", "stream300K"} {
		for _, ae := range []string{"", "zstd", "br", "gzip"} {
			name := size + "/" + ae
			if ae == "" {
				name = size + "/identity"
			}
			b.Run(name, func(b *testing.B) {
				var ctx fasthttp.RequestCtx
				src := &movable{}
				b.ReportAllocs()
				b.SetBytes(int64(len(file)))
				if size == "page20K" {
					b.SetBytes(int64(len(page)))
				}
				for range b.N {
					ctx.Request.Header.Set("Accept-Encoding", ae)
					ctx.Response.Reset()
					ctx.Response.Header.SetContentType("text/html; charset=utf-8")
					ctx.Response.Header.Set("ETag", `"abc-123"`)
					if size == "page20K" {
						ctx.Response.SetBodyRaw(page)
					} else {
						src.r.Reset(file)
						ctx.Response.SetBodyStream(src, len(file))
					}
					c.Apply(&ctx)
					if err := ctx.Response.Write(w); err != nil {
						b.Fatal(err)
					}
					w.Flush()
				}
			})
		}
	}
}

// TestApplyHeaders: Vary is added once, a weak ETag stays as it is, an
// encoded answer is left alone, in memory as streamed.
func TestApplyHeaders(t *testing.T) {
	c := newCompressor(t)
	page := text(4 << 10)
	for _, tt := range []struct {
		name           string
		set            []string
		wantVary, etag string
		wantCE         string
	}{
		{"plain", nil, "Accept-Encoding", `W/"x"`, "gzip"},
		{"other Vary", []string{"Vary", "Cookie"}, "Cookie,Accept-Encoding", `W/"x"`, "gzip"},
		{"Vary named", []string{"Vary", "Cookie, accept-encoding"}, "Cookie, accept-encoding", `W/"x"`, "gzip"},
		{"Vary *", []string{"Vary", "*"}, "*", `W/"x"`, "gzip"},
		{"weak already", []string{"ETag", `W/"y"`}, "Accept-Encoding", `W/"y"`, "gzip"},
		{"encoded", []string{"Content-Encoding", "br"}, "", `"x"`, "br"},
		{"no-transform", []string{"Cache-Control", "max-age=60,no-transform"}, "", `"x"`, ""},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set("Accept-Encoding", "gzip")
		h := &ctx.Response.Header
		h.SetContentType("application/json")
		h.Set("ETag", `"x"`)
		for i := 0; i+1 < len(tt.set); i += 2 {
			h.Set(tt.set[i], tt.set[i+1])
		}
		ctx.Response.SetBody(page)
		c.Apply(&ctx)
		vary := bytes.Join(h.PeekAll("Vary"), []byte(","))
		if string(vary) != tt.wantVary || string(h.Peek("ETag")) != tt.etag || string(h.ContentEncoding()) != tt.wantCE {
			t.Errorf("%s: Vary %q, ETag %q, Content-Encoding %q; want %q, %q, %q", tt.name, vary, h.Peek("ETag"), h.ContentEncoding(), tt.wantVary, tt.etag, tt.wantCE)
		}
		if tt.wantCE == "" && !bytes.Equal(ctx.Response.Body(), page) {
			t.Errorf("%s: body changed", tt.name)
		}
	}
}
