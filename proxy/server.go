package proxy

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/proxy/defaults"
)

// ServerOptions are the client-facing limits of NewServer.
type ServerOptions struct {
	Logger      *slog.Logger  // fasthttp's own connection errors, at debug level (default slog.Default())
	MaxBody     int64         // larger request bodies get 413 (default 10 MiB)
	ReadTimeout time.Duration // reading one request (default 30s)
	IdleTimeout time.Duration // idle keep-alive connections (default 90s)
	// ErrorPages, if not nil, is called per error fasthttp itself answers
	// (malformed request, body too large) for the pages in service.
	ErrorPages func() *ErrorPages
	// RequestBuffering reads each request body whole before the handler
	// runs (nginx's proxy_request_buffering on), at most MaxBufferedBody
	// of it in memory and the rest in a temporary file in TempDir
	// (default os.TempDir()). Off, bodies stream to the backend as they
	// arrive.
	RequestBuffering bool
	TempDir          string
}

// NewServer returns a fasthttp server that runs h (normally Proxy.ServeHTTP) for every request, with
// settings that keep responses as the backend wrote them.
func NewServer(h fasthttp.RequestHandler, o ServerOptions) *fasthttp.Server {
	o.MaxBody = orDefault(o.MaxBody, defaults.MaxBody)
	o.ReadTimeout = orDefault(o.ReadTimeout, defaults.ClientReadTimeout)
	o.IdleTimeout = orDefault(o.IdleTimeout, defaults.ClientIdleTimeout)
	maxBody := int(o.MaxBody) // for ExpectHandler
	bodies := &requestBodies{maxBody: o.MaxBody, idle: o.ReadTimeout, buffering: o.RequestBuffering,
		tempDir: o.TempDir, pages: o.ErrorPages}
	return &fasthttp.Server{
		Handler: bodies.wrap(h),
		// Bodies reach the handler as streams, whatever their size: the
		// server would otherwise allocate a declared Content-Length up
		// front. requestBodies enforces MaxBody.
		StreamRequestBody: true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if bodies.tooLarge(ctx) {
				err = fasthttp.ErrBodyTooLarge
			}
			o.serveRequestError(ctx, err)
		},
		// A client that asks before sending a body over the limit gets
		// its 413 at once, not a 100 Continue that invites it to send
		// what will be thrown away.
		ExpectHandler: func(ctx *fasthttp.RequestCtx) int {
			if ctx.Request.Header.ContentLength() > maxBody {
				writeError(ctx, errBodyTooBig)
				return fasthttp.StatusRequestEntityTooLarge
			}
			return fasthttp.StatusContinue
		},
		Name: "",
		// With StreamRequestBody this is what the server reads of a body
		// before the handler runs: the least it can, one byte.
		MaxRequestBodySize: 1,
		HeaderReceived:     bodies.headerReceived,
		// fasthttp's read buffer also caps the request header; nginx
		// accepts 8 KiB lines and cookies grow, so allow 16 KiB.
		ReadBufferSize: 16 << 10,
		// A response's head and body go to the client in one write when
		// they fit in the write buffer; fasthttp's 4 KiB default took two
		// for any body over about 4 KiB (bench/README.md, "Plain-path
		// levers"). Pooled between requests (ReduceMemoryUsage): only a
		// connection being written to holds one.
		WriteBufferSize:               16 << 10,
		ReadTimeout:                   o.ReadTimeout,
		IdleTimeout:                   o.IdleTimeout,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		// The write buffer and body buffers go back to their pools
		// between requests instead of staying with an idle connection:
		// 4 KiB less per connection (bench/README.md, "Per-connection
		// memory"), at no cost in req/s. The read buffer stays: with
		// StreamRequestBody fasthttp keeps it for the connection's life.
		ReduceMemoryUsage: true,
		TCPKeepalive:      true,
		Logger:            debugLogger{o.Logger},

		// A WebSocket tunnel closes its connections itself; fasthttp's
		// request state and read buffer are freed as soon as it starts.
		KeepHijackedConns: true,
	}
}

// serveRequestError answers requests fasthttp could not read.
func (o ServerOptions) serveRequestError(ctx *fasthttp.RequestCtx, err error) {
	var ep *ErrorPages
	if o.ErrorPages != nil {
		ep = o.ErrorPages()
	}
	ep.write(ctx, requestError(err))
}

// debugLogger sends fasthttp's per-connection messages (a client sending
// garbage, a body over the limit) to slog at debug level: they are the
// client's problem and already answered with 400 or 413.
type debugLogger struct{ l *slog.Logger }

// Printf logs one fasthttp message at debug level.
func (d debugLogger) Printf(format string, args ...any) {
	l := d.l
	if l == nil {
		l = slog.Default()
	}
	l.Debug(fmt.Sprintf(format, args...), "source", "fasthttp")
}
