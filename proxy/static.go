package proxy

import (
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/compress"
	"sessionproxy/static"
)

// Static is a route that serves the files below a directory (package
// static, nginx's root): this type gives those answers what every answer
// of the proxy has, the normalised path, X-Request-Id, the metrics and
// the access log. No session work is done. Safe for concurrent use by
// multiple goroutines.
type Static struct {
	files    *static.Files
	recorder *Recorder

	// Compression, if not nil, compresses the files' answers (package
	// compress; nil: none are).
	Compression *compress.Compressor
}

// NewStatic returns a Static for the directory root. rec, if not nil,
// counts and logs its requests.
func NewStatic(root string, rec *Recorder) (*Static, error) {
	files, err := static.New(root)
	if err != nil {
		return nil, err
	}
	return &Static{files: files, recorder: rec}, nil
}

// Alias makes s serve a request for prefix + rest from the file at root +
// replacement + rest, as nginx's alias does for a location: with prefix
// "/img/" and replacement "/", /img/a.png is root/a.png. Call it before
// the first request.
func (s *Static) Alias(prefix, replacement string) {
	s.files.Alias(prefix, replacement)
}

// ServeHTTP answers one request from the files. It is a
// fasthttp.RequestHandler.
func (s *Static) ServeHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	switch path, err := normalPath(ctx); { // no "..", no "//", see normalizePath
	case err == errPathClimbs:
		writeError(ctx, errClimb)
	case err != nil:
		writeError(ctx, errPath)
	default:
		s.files.Serve(ctx, path)
		s.Compression.Apply(ctx) // before finish: the log counts what is sent
	}
	s.recorder.finish(ctx, start)
}

// serve answers the request from the file at path (try_files' choice).
func (s *Static) serve(ctx *fasthttp.RequestCtx, path []byte) {
	start := time.Now()
	s.files.Serve(ctx, path)
	s.recorder.finish(ctx, start)
}
