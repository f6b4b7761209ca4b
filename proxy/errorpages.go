package proxy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/valyala/fasthttp"
)

// ErrorPages holds the HTML bodies the proxy's own errors answer with, by
// status, like nginx's error_page. A client that does not accept HTML gets
// the one-line plain-text reason as without pages. A nil *ErrorPages has no
// pages. Safe for concurrent use once built.
type ErrorPages struct {
	pages map[int][]byte
}

// LoadErrorPages reads each status's file once; pages are served from
// memory, so a file changed on disk takes effect on the next reload.
func LoadErrorPages(files map[int]string) (*ErrorPages, error) {
	if len(files) == 0 {
		return nil, nil
	}
	ep := &ErrorPages{pages: make(map[int][]byte, len(files))}
	// By status, so that of several unreadable files it is always the
	// same one that is named.
	for _, status := range slices.Sorted(maps.Keys(files)) {
		name := files[status]
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("error_pages.%d: %w", status, err)
		}
		ep.pages[status] = b
	}
	return ep, nil
}

// write answers e, with its page when there is one and the client accepts
// text/html.
func (ep *ErrorPages) write(ctx *fasthttp.RequestCtx, e *Error) {
	if ep != nil {
		if page, ok := ep.pages[e.Status]; ok && acceptsHTML(ctx.Request.Header.Peek("Accept")) {
			resp := &ctx.Response
			resp.Reset()
			resp.SetStatusCode(e.Status)
			resp.Header.SetContentType("text/html; charset=utf-8")
			resp.SetBodyRaw(page)
			return
		}
	}
	writeError(ctx, e)
}

// acceptsHTML reports whether an Accept header names text/html, as
// browsers' do. "*/*" alone (curl, most API clients) keeps the plain-text
// line, which scripts read.
func acceptsHTML(accept []byte) bool {
	return bytes.Contains(accept, []byte("text/html"))
}
