package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// AccessLog writes one line per request: through log/slog as text or JSON,
// or in nginx's combined format for tools that already read nginx logs.
// Lines go to a buffer flushed every second (and by Close), so that
// logging does not put a write system call on every request. Safe for
// concurrent use by multiple goroutines.
type AccessLog struct {
	combined bool
	logger   *slog.Logger
	out      *bufferedWriter
}

// NewAccessLog returns an access log in format text, json or combined
// writing to w, or nil for off.
func NewAccessLog(format string, w io.Writer) (*AccessLog, error) {
	if format == "off" || format == "" {
		return nil, nil
	}
	bw := newBufferedWriter(w)
	l := &AccessLog{out: bw}
	switch format {
	case "text":
		l.logger = slog.New(slog.NewTextHandler(bw, nil))
	case "json":
		l.logger = slog.New(slog.NewJSONHandler(bw, nil))
	case "combined":
		l.combined = true
	default:
		bw.Close()
		return nil, fmt.Errorf("proxy: unknown access log format %q", format)
	}
	return l, nil
}

// Log records one finished request. Proxy.AccessLog is set to it.
func (l *AccessLog) Log(ctx *fasthttp.RequestCtx, info *AccessInfo) {
	if l.combined {
		l.logCombined(ctx, info)
		return
	}
	backend := ""
	if info.Backend != nil {
		backend = info.Backend.URL
	}
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("client", ctx.RemoteIP().String()),
		slog.String("method", string(ctx.Method())),
		slog.String("path", string(ctx.Path())),
		slog.Int("status", ctx.Response.StatusCode()),
		slog.Int64("bytes", info.Bytes),
		slog.Duration("duration", info.Duration),
		slog.String("backend", backend),
		slog.String("request_id", string(ctx.Request.Header.Peek("X-Request-Id"))),
		slog.String("session", info.Session),
	)
}

// logAccess calls log for a request whose answer is ready: at once for
// a body held in memory, or, for a streamed one (a backend's body, a
// file), when the server has relayed it and closes the stream. Either
// way info.Bytes is what went to the client. A body is never read for
// the log: fasthttp's Response.Body reads a stream whole, which would
// hold an event stream until it ends, a large file in memory, and turn
// a range into the whole file.
func logAccess(log func(*fasthttp.RequestCtx, *AccessInfo), ctx *fasthttp.RequestCtx, info *AccessInfo) {
	resp := &ctx.Response
	if resp.IsBodyStream() {
		if b, ok := resp.BodyStream().(countedBody); ok {
			b.logWhenRelayed(log, ctx, info)
			return
		}
		// Every stream the proxy makes is counted; one that is not
		// is logged with no byte count rather than read.
		info.Bytes = -1
	} else {
		info.Bytes = fixedBodyBytes(ctx)
	}
	log(ctx, info)
}

// fixedBodyBytes is what a response held in memory sends of its body.
func fixedBodyBytes(ctx *fasthttp.RequestCtx) int64 {
	resp := &ctx.Response
	if resp.SkipBody || ctx.IsHead() || statusHasNoBody(resp.StatusCode()) {
		return 0
	}
	return int64(len(resp.Body())) // not a stream: Body reads nothing
}

// countedBody is a response body stream that counts the bytes it
// relays and logs its request once the server closes it.
type countedBody interface {
	logWhenRelayed(log func(*fasthttp.RequestCtx, *AccessInfo), ctx *fasthttp.RequestCtx, info *AccessInfo)
}

// pendingLog is the access-log call of a streamed response, made when
// its body stream is closed. fasthttp closes a response's body stream
// once it is written (or the response dropped) and before the request
// and response are reset for the next request on the connection, so
// ctx still describes this request then. Its zero value logs nothing.
type pendingLog struct {
	log  func(*fasthttp.RequestCtx, *AccessInfo)
	ctx  *fasthttp.RequestCtx
	info AccessInfo
}

func (l *pendingLog) set(log func(*fasthttp.RequestCtx, *AccessInfo), ctx *fasthttp.RequestCtx, info *AccessInfo) {
	l.log, l.ctx, l.info = log, ctx, *info
}

// done logs the request with sent bytes relayed, once. The duration is
// then the whole exchange's, body included, as nginx's $request_time.
func (l *pendingLog) done(sent int64) {
	if l.log == nil {
		return
	}
	l.info.Bytes = sent
	l.info.Duration = time.Since(l.info.Start)
	l.log(l.ctx, &l.info)
	*l = pendingLog{}
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// logCombined writes nginx's combined format:
// $remote_addr - $remote_user [$time_local] "$request" $status
// $body_bytes_sent "$http_referer" "$http_user_agent"
func (l *AccessLog) logCombined(ctx *fasthttp.RequestCtx, info *AccessInfo) {
	bp := linePool.Get().(*[]byte)
	b := appendIP((*bp)[:0], ctx.RemoteAddr())
	b = append(b, " - - ["...)
	b = info.Start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "`...)
	b = appendEscaped(b, ctx.Method())
	b = append(b, ' ')
	b = appendEscaped(b, ctx.RequestURI())
	b = append(b, ' ')
	b = appendEscaped(b, ctx.Request.Header.Protocol())
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, ' ')
	if info.Bytes < 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, info.Bytes, 10)
	}
	b = append(b, ` "`...)
	b = appendOrDash(b, ctx.Request.Header.Referer())
	b = append(b, `" "`...)
	b = appendOrDash(b, ctx.Request.Header.UserAgent())
	b = append(b, "\"\n"...)
	l.out.Write(b)
	*bp = b
	linePool.Put(bp)
}

func appendOrDash(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	return appendEscaped(b, v)
}

// appendEscaped escapes as nginx does: quotes, backslashes and bytes
// outside printable ASCII become \xHH.
func appendEscaped(b, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// Close flushes what is buffered and stops the flusher.
func (l *AccessLog) Close() {
	if l != nil {
		l.out.Close()
	}
}

// bufferedWriter is a bufio.Writer behind a mutex, flushed every second.
type bufferedWriter struct {
	mu   sync.Mutex // protects w
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedWriter(w io.Writer) *bufferedWriter {
	b := &bufferedWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flusher()
	return b
}

// Write buffers p; the flusher or Close writes it out.
func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

func (b *bufferedWriter) flusher() {
	defer close(b.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.mu.Lock()
			b.w.Flush()
			b.mu.Unlock()
		case <-b.stop:
			return
		}
	}
}

// Close stops the flusher and writes out what is buffered.
func (b *bufferedWriter) Close() {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	b.w.Flush()
	b.mu.Unlock()
}
