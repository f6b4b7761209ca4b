package proxy

import "github.com/valyala/fasthttp"

// HeaderRules are a route's header edits (nginx's proxy_set_header,
// more_clear_input_headers, add_header, proxy_hide_header). A nil
// *HeaderRules edits nothing.
type HeaderRules struct {
	Request, Response HeaderEdit
}

// HeaderEdit removes, then sets (replacing every line of the name), then
// adds (one more line) headers. Names are as written in the config.
type HeaderEdit struct {
	Remove []string
	Set    []Header
	Add    []Header
}

// Header is one header line.
type Header struct{ Name, Value string }

func (r *HeaderRules) request(ctx *fasthttp.RequestCtx) {
	if r != nil {
		r.Request.apply(&ctx.Request.Header)
	}
}

func (r *HeaderRules) response(ctx *fasthttp.RequestCtx) {
	if r != nil {
		r.Response.apply(&ctx.Response.Header)
	}
}

// headerLines is what fasthttp's request and response headers share of
// what the rules do (a pointer in an interface: no allocation).
type headerLines interface {
	Del(key string)
	Set(key, value string)
	Add(key, value string)
}

// apply removes, then sets, then adds, as the rules are documented.
func (e *HeaderEdit) apply(h headerLines) {
	for _, n := range e.Remove {
		h.Del(n)
	}
	for _, kv := range e.Set {
		h.Set(kv.Name, kv.Value)
	}
	for _, kv := range e.Add {
		h.Add(kv.Name, kv.Value)
	}
}
