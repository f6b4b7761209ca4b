package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	attrs := []slog.Attr{
		slog.String("client", ctx.RemoteIP().String()),
		slog.String("method", string(ctx.Method())),
		slog.String("path", string(loggedPath(ctx))),
		slog.Int("status", ctx.Response.StatusCode()),
		slog.Int64("bytes", info.Bytes),
		slog.Duration("duration", info.Duration),
	}
	if format == formatJSON {
		// JSON's own additions (0.3.0): seconds as nginx's
		// $request_time, and the target with its query.
		attrs = append(attrs,
			slog.Any("request_time", json.RawMessage(fmt.Sprintf("%.3f", float64(info.Duration.Milliseconds())/1000))),
			slog.String("request_uri", string(ctx.Request.Header.RequestURI())))
	}
	attrs = append(attrs,
		slog.String("backend", backendURL(info)),
		slog.String("request_id", string(ctx.Request.Header.Peek("X-Request-Id"))),
		slog.String("session", info.Session),
	)
	slog.New(h).LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
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
	for _, format := range []string{"text", "json", "combined", templateAll} {
		name := format
		if format == templateAll {
			name = "template"
		}
		b.Run(name, func(b *testing.B) {
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
				slog.String("path", string(loggedPath(&ctx))),
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

// loggedRequests collects the access-log calls of a test's proxy by
// request path, as the log would write them.
type loggedRequests struct {
	mu    sync.Mutex
	bytes map[string][]int64
}

func (l *loggedRequests) log(ctx *fasthttp.RequestCtx, info *AccessInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := string(ctx.Path())
	l.bytes[p] = append(l.bytes[p], info.Bytes)
}

func (l *loggedRequests) of(path string) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.bytes[path])
}

// TestAccessLogBytes: the byte count of each kind of answer, through
// the proxy and a static route, is the body bytes the client got: none
// for HEAD, 204 and 304, the body for one held in memory, the relayed
// bytes of a streamed one (logged once it is relayed), the range of a
// file.
func TestAccessLogBytes(t *testing.T) {
	site := newStaticSite(t)
	big := strings.Repeat("x", MaxBufferedBody+1000) // over the whole-body limit: streamed
	site.app.setHandler(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hello")
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		case "/chunked":
			io.WriteString(w, "part one ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/noupgrade": // an upgrade request answered without 101
			io.WriteString(w, "no websocket here")
		}
	})
	logged := &loggedRequests{bytes: map[string][]int64{}}
	st, err := NewStatic(site.root, &Recorder{Metrics: NewMetrics(), AccessLog: AccessLogFunc(logged.log)})
	if err != nil {
		t.Fatal(err)
	}
	rt := &Router{
		Default: &Proxy{Pool: newPool(t, "round_robin", nil, site.app.url()), Settings: Settings{AccessLog: AccessLogFunc(logged.log)}},
		Routes:  []Route{{Path: "/static/", Handler: st}},
	}
	url := startHandler(t, rt, ServerOptions{})
	for _, tc := range []struct {
		method, path string
		hdr          []string
		want         int64
	}{
		{"GET", "/small", nil, 5},
		{"HEAD", "/small", nil, 0},
		{"GET", "/big", nil, int64(len(big))},
		{"HEAD", "/big", nil, 0},
		{"GET", "/chunked", nil, int64(len("part one part two"))},
		{"GET", "/nocontent", nil, 0},
		{"GET", "/notmodified", nil, 0},
		{"GET", "/noupgrade", []string{"Connection", "Upgrade", "Upgrade", "websocket"}, int64(len("no websocket here"))},
		{"GET", "/static/data.bin", nil, 1000},
		{"GET", "/static/data.bin", []string{"Range", "bytes=0-0"}, 1},
		{"GET", "/static/data.bin", []string{"Range", "bytes=990-"}, 10},
		{"HEAD", "/static/data.bin", nil, 0},
		{"GET", "/static/app.css", []string{"If-None-Match", "*"}, 0},
		{"GET", "/static/missing", nil, int64(len("not found\n"))},
		{"HEAD", "/static/missing", nil, 0}, // an error body the server does not send
	} {
		before := len(logged.of(tc.path))
		r := do(t, tc.method, url+tc.path, "", tc.hdr...)
		if tc.method != "HEAD" && int64(len(r.body)) != tc.want {
			t.Fatalf("%s %s %v: the client got %d bytes, the test expects %d", tc.method, tc.path, tc.hdr, len(r.body), tc.want)
		}
		var got []int64
		waitFor(t, "the access-log call of "+tc.path, func() bool {
			got = logged.of(tc.path)
			return len(got) > before
		})
		if len(got) != before+1 || got[before] != tc.want {
			t.Errorf("%s %s %v: logged %v, want one call with %d bytes", tc.method, tc.path, tc.hdr, got[before:], tc.want)
		}
	}
}

// TestAccessLogAfterClose: a line logged after Close, as a stream that
// outlives a reload's log is, is written out, not left in the buffer.
func TestAccessLogAfterClose(t *testing.T) {
	var out bytes.Buffer
	l, err := NewAccessLog("combined", &out)
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/before")
	l.Log(&ctx, &AccessInfo{Start: time.Now()})
	l.Close()
	ctx.Request.SetRequestURI("/after")
	l.Log(&ctx, &AccessInfo{Start: time.Now(), Bytes: 7})
	if s := out.String(); !strings.Contains(s, "GET /before ") || !strings.Contains(s, "GET /after HTTP/1.1\" 200 7 ") {
		t.Fatalf("log after Close:\n%s", s)
	}
}

// TestAccessLogPathAsSent: the logged path is the target as it went on,
// still escaped, not fasthttp's decoding of it: a climb refused with 400
// was logged as the file it aimed at.
func TestAccessLogPathAsSent(t *testing.T) {
	for target, want := range map[string]string{
		"/static/%2e%2e/%2e%2e/etc/passwd?x=1": "/static/%2e%2e/%2e%2e/etc/passwd",
		"http://evil.example/x/../y?q":         "/x/../y",
		"/a%20b":                               "/a%20b",
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetRequestURI(target)
		ctx.Request.Header.SetHost("h")
		line := string(appendText(nil, &ctx, &AccessInfo{}))
		if !strings.Contains(line, " path="+want+" ") {
			t.Errorf("%s: %s", target, line)
		}
	}
}

// templateAll is a log_format template with every variable.
const templateAll = `$remote_addr [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" ` +
	`rt=$request_time ua=$upstream_addr urt=$upstream_response_time id=$request_id s=$session`

// TestAccessLogTemplate: each variable is written as nginx writes it.
func TestAccessLogTemplate(t *testing.T) {
	var ctx fasthttp.RequestCtx
	ctx.Init(&ctx.Request, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4000}, nil)
	ctx.Request.SetRequestURI("/p?q=1")
	ctx.Request.Header.Set("X-Request-Id", "rid-1")
	ctx.Request.Header.Set("User-Agent", `a"b`)
	ctx.Response.SetStatusCode(201)
	start := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	info := &AccessInfo{Start: start, Duration: 1234 * time.Millisecond, Upstream: 5 * time.Millisecond,
		Backend: &balancer.Backend{URL: "http://127.0.0.1:9001"}, Bytes: 5, SessionID: [6]byte{'a', 'b', 'c', 'd', 'e', 'f'}}
	l, _ := NewAccessLog(templateAll, io.Discard)
	defer l.Close()
	got := string(appendTemplate(nil, l.parts, &ctx, info))
	want := `192.0.2.7 [07/Dec/2026:21:00:00 +0000] "GET /p?q=1 HTTP/1.1" 201 5 "-" "a\x22b" rt=1.234 ua=127.0.0.1:9001 urt=0.005 id=rid-1 s=abcdef` + "\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	info.Backend, info.SessionID = nil, [6]byte{}
	got = string(appendTemplate(nil, l.parts, &ctx, info))
	if !strings.Contains(got, "ua=- urt=- id=rid-1 s=-") {
		t.Fatalf("no backend, no session: %q", got)
	}
}
