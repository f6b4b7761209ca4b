package proxy

import (
	"bytes"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"sessionproxy/proxy/rules"
)

// Besides an upstream (*Proxy) and files (*Static), a route's Handler can
// be one of these actions: a fixed answer (Respond, nginx's "return CODE
// TEXT"), a redirect (Redirect, "return CODE URL") or try_files over
// files with a fallback (TryFiles). None does session work, except the
// upstream a TryFiles falls back to.
var (
	_ Handler = (*Respond)(nil)
	_ Handler = (*Redirect)(nil)
	_ Handler = (*TryFiles)(nil)
)

// Respond answers every request with Status and Body (text/plain).
type Respond struct {
	Status   int
	Body     string
	Recorder *Recorder // counts and logs; nil: neither
}

// ServeHTTP implements Handler.
func (a *Respond) ServeHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(a.Status)
	if a.Body != "" {
		resp.Header.SetContentType("text/plain; charset=utf-8")
		resp.SetBodyString(a.Body)
	}
	a.Recorder.finish(ctx, start)
}

// Redirect answers Status (default 302) with Location: To expanded for
// the request.
type Redirect struct {
	To       *rules.Template // required
	Status   int
	Recorder *Recorder
}

// ServeHTTP implements Handler.
func (a *Redirect) ServeHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s := scratchPool.Get().(*scratch)
	var v rules.Vars
	var host [256]byte
	requestVars(ctx, &v, host[:0])
	s.b = a.To.Append(s.b[:0], &v)
	resp := &ctx.Response
	resp.Reset()
	status := a.Status
	if status == 0 {
		status = fasthttp.StatusFound
	}
	resp.SetStatusCode(status)
	resp.Header.SetCanonical(hdrLocation, s.b)
	scratchPool.Put(s)
	a.Recorder.finish(ctx, start)
}

var (
	valueSchemeHTTP  = []byte("http")
	valueSchemeHTTPS = []byte("https")
)

// requestVars fills v for the request in ctx; the lower-cased host is
// written into hostBuf (its capacity used when it suffices).
func requestVars(ctx *fasthttp.RequestCtx, v *rules.Vars, hostBuf []byte) {
	origin, _ := splitTarget(ctx.Request.Header.RequestURI())
	v.RequestURI = origin
	if p, err := normalPath(ctx); err == nil {
		v.URI = p
	}
	host := matchHost(ctx.Request.Header.Host())
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		hostBuf = append(hostBuf, c)
	}
	v.Host = hostBuf
	v.Scheme = valueSchemeHTTP
	if ctx.IsTLS() {
		v.Scheme = valueSchemeHTTPS
	}
	v.Args = nil
	if i := bytes.IndexByte(origin, '?'); i >= 0 {
		v.Args = origin[i+1:]
	}
}

// TryFiles serves the first of Tries (templates expanded for the request,
// as nginx's try_files) that names a file, or a directory when the entry
// is written with a trailing "/", below Static's directory. When none does, the request goes to
// Fallback (an upstream, "@name", with its session work) if set, else is
// answered Code if set, else 404.
type TryFiles struct {
	Static   *Static // required
	Tries    []*rules.Template
	Fallback Handler
	Code     int
}

// ServeHTTP implements Handler.
func (a *TryFiles) ServeHTTP(ctx *fasthttp.RequestCtx) {
	var v rules.Vars
	var host [256]byte
	requestVars(ctx, &v, host[:0])
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	for _, t := range a.Tries {
		s.b = t.Append(s.b[:0], &v)
		// As nginx: only an entry written with a trailing "/" ("$uri/")
		// tries a directory. "$uri" for a request for "/" names a
		// directory, which is no file: the next entry is tried.
		if len(s.b) > 0 && s.b[len(s.b)-1] == '/' && !strings.HasSuffix(t.String(), "/") {
			continue
		}
		if a.Static.files.Exists(s.b) {
			a.Static.serve(ctx, s.b)
			return
		}
	}
	switch {
	case a.Fallback != nil:
		a.Fallback.ServeHTTP(ctx)
	case a.Code != 0:
		start := time.Now()
		refuse(ctx, a.Code, fasthttp.StatusMessage(a.Code)+"\n")
		a.Static.recorder.finish(ctx, start)
	default:
		start := time.Now()
		refuse(ctx, fasthttp.StatusNotFound, "not found\n")
		a.Static.recorder.finish(ctx, start)
	}
}
