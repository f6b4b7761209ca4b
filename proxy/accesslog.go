package proxy

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fasthttp"

	"sessionproxy/proxy/logformat"
	"sessionproxy/static"
)

// AccessLog writes one line per request: as log/slog's text or JSON
// handlers would write it, in nginx's combined format for tools that
// already read nginx logs, or from a template of nginx log_format
// variables (logformat). Lines are written by hand into a pooled
// buffer, not through slog, so that logging allocates nothing per
// request; a logWriter takes them and writes them from a goroutine of
// its own, so that logging puts no write system call on a request. Safe
// for concurrent use by multiple goroutines.
//
// A reload replaces the log while requests that began under it may still
// write their lines (a streamed answer is logged when its body ends), so
// its file is closed only when the last of its users lets go: the owner
// (Close) and each request that may still write (Hold, Release).
type AccessLog struct {
	format logFormat
	parts  []logformat.Part // formatTemplate's, parsed once
	out    *logWriter
	users  atomic.Int64 // the owner until Close, plus each Hold not yet released
}

// An AccessLogger records finished requests. *AccessLog is one;
// AccessLogFunc makes one of a function.
type AccessLogger interface {
	// Log records one finished request: when the response is ready, or
	// for a streamed body once it is relayed (AccessInfo.Bytes). It runs
	// on the client connection's goroutine and must not keep ctx or info.
	Log(ctx *fasthttp.RequestCtx, info *AccessInfo)
}

// AccessLogFunc is a function used as an AccessLogger.
type AccessLogFunc func(*fasthttp.RequestCtx, *AccessInfo)

// Log calls f(ctx, info).
func (f AccessLogFunc) Log(ctx *fasthttp.RequestCtx, info *AccessInfo) { f(ctx, info) }

var _ AccessLogger = (*AccessLog)(nil)

// logFormat is an access log's line format.
type logFormat uint8

const (
	formatText logFormat = iota
	formatJSON
	formatCombined
	formatTemplate
)

// NewAccessLog returns an access log in format text, json, combined or
// a template of $variables (logformat.Parse) writing to w, or nil for
// off.
func NewAccessLog(format string, w io.Writer) (*AccessLog, error) {
	l, err := newAccessLog(format)
	if l != nil {
		l.out = newLogWriter(w, nil, "")
	}
	return l, err
}

// OpenAccessLog is NewAccessLog appending to the file at path (created
// if need be), which Reopen opens again; an empty path is standard
// error.
func OpenAccessLog(format, path string) (*AccessLog, error) {
	l, err := newAccessLog(format)
	if l == nil || err != nil {
		return nil, err
	}
	if path == "" {
		l.out = newLogWriter(os.Stderr, nil, "")
		return l, nil
	}
	f, err := openLogFile(path)
	if err != nil {
		return nil, fmt.Errorf("access_log.path: %w", err)
	}
	l.out = newLogWriter(f, f, path)
	return l, nil
}

func newAccessLog(format string) (*AccessLog, error) {
	var f logFormat
	switch {
	case format == "off" || format == "":
		return nil, nil
	case format == "text":
		f = formatText
	case format == "json":
		f = formatJSON
	case format == "combined":
		f = formatCombined
	case logformat.IsTemplate(format):
		parts, err := logformat.Parse(format)
		if err != nil {
			return nil, fmt.Errorf("proxy: access log format: %w", err)
		}
		l := &AccessLog{format: formatTemplate, parts: parts}
		l.users.Store(1)
		return l, nil
	default:
		return nil, fmt.Errorf("proxy: unknown access log format %q", format)
	}
	l := &AccessLog{format: f}
	l.users.Store(1)
	return l, nil
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Log records one finished request. Settings.AccessLog is set to it.
func (l *AccessLog) Log(ctx *fasthttp.RequestCtx, info *AccessInfo) {
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	switch l.format {
	case formatText:
		b = appendText(b, ctx, info)
	case formatJSON:
		b = appendJSON(b, ctx, info)
	case formatTemplate:
		b = appendTemplate(b, l.parts, ctx, info)
	default:
		b = appendCombined(b, ctx, info)
	}
	l.out.Write(b)
	*bp = b
	linePool.Put(bp)
}

// appendText writes the line slog's TextHandler wrote for
// Info("access", client, method, path, status, bytes, duration, backend,
// request_id, session), byte for byte, so that what parses it still does.
func appendText(b []byte, ctx *fasthttp.RequestCtx, info *AccessInfo) []byte {
	b = append(b, "time="...)
	b = appendRFC3339Millis(b, time.Now())
	b = append(b, " level=INFO msg=access client="...)
	b = appendIP(b, ctx.RemoteAddr())
	b = append(b, " method="...)
	b = appendTextString(b, bstr(ctx.Method()))
	b = append(b, " path="...)
	b = appendTextString(b, bstr(loggedPath(ctx)))
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, info.Bytes, 10)
	b = append(b, " duration="...)
	b = append(b, info.Duration.String()...) // inlined: the string stays on the stack
	b = append(b, " backend="...)
	b = appendTextString(b, backendURL(info))
	b = append(b, " request_id="...)
	b = appendTextString(b, bstr(ctx.Request.Header.Peek("X-Request-Id")))
	b = append(b, " session="...)
	b = appendTextString(b, info.Session)
	return append(b, '\n')
}

// appendJSON writes the line slog's JSONHandler wrote for the same call.
func appendJSON(b []byte, ctx *fasthttp.RequestCtx, info *AccessInfo) []byte {
	b = append(b, `{"time":"`...)
	b = time.Now().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"access","client":"`...)
	b = appendIP(b, ctx.RemoteAddr())
	b = append(b, `","method":`...)
	b = appendJSONString(b, bstr(ctx.Method()))
	b = append(b, `,"path":`...)
	b = appendJSONString(b, bstr(loggedPath(ctx)))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, info.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(info.Duration), 10) // nanoseconds, as json.Marshal and slog
	b = append(b, `,"request_time":`...)
	b = appendSeconds(b, info.Duration) // seconds, as nginx's $request_time
	b = append(b, `,"request_uri":`...)
	b = appendJSONString(b, bstr(ctx.Request.Header.RequestURI())) // the target with its query
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, backendURL(info))
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, bstr(ctx.Request.Header.Peek("X-Request-Id")))
	b = append(b, `,"session":`...)
	b = appendJSONString(b, info.Session)
	return append(b, "}\n"...)
}

func backendURL(info *AccessInfo) string {
	if info.Backend == nil {
		return ""
	}
	return info.Backend.URL
}

// bstr is b as a string without a copy, for the appends below, which
// read it and keep nothing of it.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendRFC3339Millis is slog's time format: RFC 3339 with exactly three
// digits of fraction.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	// RFC3339Nano trims trailing zeros: a tenth of a millisecond more
	// keeps four digits, and the fourth is dropped.
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}

// appendTextString writes s as slog's TextHandler does: as it is, or
// quoted (strconv.Quote) when empty or holding a space, '=', '"', a
// control character or anything that is not printable UTF-8.
func appendTextString(b []byte, s string) []byte {
	if !textNeedsQuoting(s) {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
}

func textNeedsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// jsonSafe reports whether an ASCII byte goes into a JSON string as it
// is (slog's safeSet: DEL is).
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// appendJSONString writes s as a quoted JSON string, escaped as slog's
// JSONHandler does (invalid UTF-8 becomes U+FFFD; U+2028 and U+2029 are
// escaped).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// logAccess calls log for a request whose answer is ready: at once for
// a body held in memory, or, for a streamed one (a backend's body, a
// file), when the server has relayed it and closes the stream. Either
// way info.Bytes is what went to the client. A body is never read for
// the log: fasthttp's Response.Body reads a stream whole, which would
// hold an event stream until it ends, a large file in memory, and turn
// a range into the whole file.
func logAccess(log AccessLogger, ctx *fasthttp.RequestCtx, info *AccessInfo) {
	resp := &ctx.Response
	if resp.IsBodyStream() {
		switch b := resp.BodyStream().(type) {
		case countedBody:
			b.logWhenRelayed(log, ctx, info)
			return
		case observedBody: // a static file's, or a compressed stream
			l := observedLogPool.Get().(*observedLog)
			l.set(log, ctx, info)
			b.Observe(l)
			return
		}
		// Every stream the proxy makes is counted; one that is not
		// is logged with no byte count rather than read.
		info.Bytes = -1
	} else {
		info.Bytes = fixedBodyBytes(ctx)
	}
	log.Log(ctx, info)
}

// fixedBodyBytes is what a response held in memory sends of its body.
func fixedBodyBytes(ctx *fasthttp.RequestCtx) int64 {
	resp := &ctx.Response
	if resp.SkipBody || ctx.IsHead() || statusHasNoBody(resp.StatusCode()) {
		return 0
	}
	return int64(len(resp.Body())) // not a stream: Body reads nothing
}

// observedBody is a response body stream that tells a static.Observer
// the bytes it sent once it is closed: a static file's body
// (static.Body) and a compressed stream (package compress).
type observedBody interface {
	Observe(static.Observer)
}

// countedBody is a response body stream that counts the bytes it
// relays and logs its request once the server closes it.
type countedBody interface {
	logWhenRelayed(log AccessLogger, ctx *fasthttp.RequestCtx, info *AccessInfo)
}

// pendingLog is the access-log call of a streamed response, made when
// its body stream is closed. fasthttp closes a response's body stream
// once it is written (or the response dropped) and before the request
// and response are reset for the next request on the connection, so
// ctx still describes this request then. Its zero value logs nothing.
//
// An *AccessLog is held until the line is written: the line may come
// long after a reload replaced the log, and it belongs in the file the
// request began with, which must stay open for it.
type pendingLog struct {
	log  AccessLogger
	held *AccessLog // log, when it is one and held
	ctx  *fasthttp.RequestCtx
	info AccessInfo
}

func (l *pendingLog) set(log AccessLogger, ctx *fasthttp.RequestCtx, info *AccessInfo) {
	l.log, l.ctx, l.info = log, ctx, *info
	if al, ok := log.(*AccessLog); ok && al.Hold() {
		l.held = al
	}
}

// done logs the request with sent bytes relayed, once. The duration is
// then the whole exchange's, body included, as nginx's $request_time.
func (l *pendingLog) done(sent int64) {
	if l.log == nil {
		return
	}
	l.info.Bytes = sent
	l.info.Duration = time.Since(l.info.Start)
	l.log.Log(l.ctx, &l.info)
	l.held.Release()
	*l = pendingLog{}
}

// observedLog is a pendingLog that a static file's body makes when it is
// closed (static.Observer); pooled, as the request path does not allocate.
type observedLog struct{ pendingLog }

var observedLogPool = sync.Pool{New: func() any { return new(observedLog) }}

// Relayed logs the request with sent bytes relayed.
func (l *observedLog) Relayed(sent int64) {
	l.done(sent)
	observedLogPool.Put(l)
}

// appendCombined writes nginx's combined format:
// $remote_addr - $remote_user [$time_local] "$request" $status
// $body_bytes_sent "$http_referer" "$http_user_agent"
func appendCombined(b []byte, ctx *fasthttp.RequestCtx, info *AccessInfo) []byte {
	b = appendIP(b, ctx.RemoteAddr())
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
	return append(b, "\"\n"...)
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

// Close lets go of the owner's hold on l, once: when no request holds it
// either, what is buffered is written out, the writer's goroutine stops
// and the file, if l has one, is closed. A nil l does nothing.
func (l *AccessLog) Close() { l.Release() }

// Hold keeps l open for a request that may still write a line, until
// Release. It reports false, holding nothing, when l is already closed
// (the request should use the log that replaced it). A nil l (the log
// off) holds nothing and reports true. The request path calls it on
// every request: it does not allocate.
func (l *AccessLog) Hold() bool {
	if l == nil {
		return true
	}
	for {
		n := l.users.Load()
		if n <= 0 {
			return false
		}
		if l.users.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release lets go of a Hold (or, as Close, of the owner's). The last one
// closes l. A nil l does nothing.
func (l *AccessLog) Release() {
	if l != nil && l.users.Add(-1) == 0 {
		l.out.Close()
	}
}

// Flush writes out the lines waiting now, to the file open now. Shutdown
// calls it after Close, for the lines of requests that still hold l.
func (l *AccessLog) Flush() {
	if l != nil {
		l.out.Flush()
	}
}

// Reopen opens the log's file again, for logrotate (SIGUSR1): lines
// logged before go to the file open before, the rest to the new one. On
// failure the old file is kept. A log on standard error has nothing to
// reopen.
func (l *AccessLog) Reopen() error {
	if l == nil {
		return nil
	}
	return l.out.Reopen()
}

// loggedPath is the path of the request target as it went on (the client's
// own, or a route's rewrite of it), still escaped: fasthttp's ctx.Path() is
// its own decoding and resolution of it, so a request refused for climbing
// above "/" (/static/%2e%2e/%2e%2e/etc/passwd) was logged as /etc/passwd.
func loggedPath(ctx *fasthttp.RequestCtx) []byte {
	origin, _ := splitTarget(ctx.Request.Header.RequestURI())
	return pathOf(origin)
}
