package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/balancer"
)

// slogLine is the access-log line as slog writes it for the same
// request: the text and json formats went through slog before they were
// written by hand, and their readers expect what slog wrote.
func slogLine(format logFormat, ctx *fasthttp.RequestCtx, info *AccessInfo) []byte {
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if format == formatJSON {
		h = slog.NewJSONHandler(&buf, nil)
	}
	slog.New(h).LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("client", ctx.RemoteIP().String()),
		slog.String("method", string(ctx.Method())),
		slog.String("path", string(ctx.Path())),
		slog.Int("status", ctx.Response.StatusCode()),
		slog.Int64("bytes", info.Bytes),
		slog.Duration("duration", info.Duration),
		slog.String("backend", backendURL(info)),
		slog.String("request_id", string(ctx.Request.Header.Peek("X-Request-Id"))),
		slog.String("session", info.Session),
	)
	return buf.Bytes()
}

// afterTime cuts a line's time field, the one part that differs between
// two lines written a moment apart.
func afterTime(line []byte) string {
	if i := bytes.Index(line, []byte("level")); i >= 0 {
		return string(line[i:])
	}
	return string(line)
}

// checkSameAsSlog compares both formats' lines for one request.
func checkSameAsSlog(t *testing.T, method, path, requestID, session string, backend *balancer.Backend) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Init(&ctx.Request, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4000}, nil)
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(path)
	ctx.Request.Header.Set("X-Request-Id", requestID)
	ctx.Response.SetStatusCode(206)
	info := &AccessInfo{Start: time.Now(), Duration: 1234567 * time.Nanosecond, Backend: backend, Session: session, Bytes: 42}
	for _, f := range []logFormat{formatText, formatJSON} {
		var got []byte
		if f == formatText {
			got = appendText(nil, &ctx, info)
		} else {
			got = appendJSON(nil, &ctx, info)
		}
		want := slogLine(f, &ctx, info)
		if afterTime(got) != afterTime(want) {
			t.Errorf("format %d:\n got %q\nwant %q", f, got, want)
		}
		if f == formatText {
			if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", strings.TrimPrefix(strings.Fields(string(got))[0], "time=")); err != nil {
				t.Errorf("text time: %v in %q", err, got)
			}
		}
	}
}

// TestAccessLogLinesAsSlog: the hand-written text and json lines are
// slog's, quoting and escaping included.
func TestAccessLogLinesAsSlog(t *testing.T) {
	be := &balancer.Backend{URL: "http://127.0.0.1:9001"}
	for _, tc := range []struct{ method, path, id, session string }{
		{"GET", "/plain", "rid-1", "none"},
		{"POST", "/a%20b=c", "", "local"},
		{"GET", `/q"uote\back`, `id "with" quotes`, "memcached"},
		{"GET", "/%e2%80%a8sep%e2%80%a9", "\x01ctl\x7f", "miss"},
		{"GET", "/caf%c3%a9/%ff%fe", "tab\there", ""},
		{"M=1", "/ü/%0a", "é", "new"},
	} {
		checkSameAsSlog(t, tc.method, tc.path, tc.id, tc.session, be)
	}
	checkSameAsSlog(t, "GET", "/", "x", "none", nil)
}

// FuzzAccessLogLine: for any method, path and request id, the text and
// json lines are slog's.
func FuzzAccessLogLine(f *testing.F) {
	f.Add("GET", "/plain", "rid")
	f.Add("PUT", "/a b=\"c\"", "\x00\xff")
	f.Add("GET", "/\u2028", "é\t")
	f.Fuzz(func(t *testing.T, method, path, id string) {
		if method == "" || strings.ContainsAny(method, " \r\n") || strings.ContainsAny(id, "\r\n") {
			return // not something fasthttp would hand the log
		}
		checkSameAsSlog(t, method, "/"+path, id, "none", nil)
	})
}

// BenchmarkAccessLogLine is one access-log line alone, formatted and
// buffered, per format; slog-text is the same line through slog, as the
// text format was written before (bench/README.md, "Access log").
func BenchmarkAccessLogLine(b *testing.B) {
	var ctx fasthttp.RequestCtx
	ctx.Init(&ctx.Request, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4000}, nil)
	ctx.Request.SetRequestURI("/plain?q=1")
	ctx.Request.Header.Set("X-Request-Id", "b220fc322032d8270000000000000001")
	ctx.Request.Header.Set("User-Agent", "wrk")
	info := &AccessInfo{Start: time.Now(), Duration: 1234567, Backend: &balancer.Backend{URL: "http://127.0.0.1:9001"}, Session: "local", Bytes: 5}
	for _, format := range []string{"text", "json", "combined"} {
		b.Run(format, func(b *testing.B) {
			l, err := NewAccessLog(format, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.ReportAllocs()
			for b.Loop() {
				l.Log(&ctx, info)
			}
		})
	}
	b.Run("slog-text", func(b *testing.B) {
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			logger.LogAttrs(context.Background(), slog.LevelInfo, "access",
				slog.String("client", ctx.RemoteIP().String()),
				slog.String("method", string(ctx.Method())),
				slog.String("path", string(ctx.Path())),
				slog.Int("status", ctx.Response.StatusCode()),
				slog.Int64("bytes", info.Bytes),
				slog.Duration("duration", info.Duration),
				slog.String("backend", backendURL(info)),
				slog.String("request_id", string(ctx.Request.Header.Peek("X-Request-Id"))),
				slog.String("session", info.Session),
			)
		}
	})
}
