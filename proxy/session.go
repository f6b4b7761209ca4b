package proxy

import (
	"net/http"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// Sessions connects the proxy to the session store. (Filled in by the
// sessions work; the proxy only calls load and apply.)
type Sessions struct{ metrics *metrics.Set }

type sessionState struct {
	lookup string
}

func (s *sessionState) reset() { *s = sessionState{} }

func (s *Sessions) load(ctx *fasthttp.RequestCtx, st *sessionState) *Error { return nil }

func (s *Sessions) apply(ctx *fasthttp.RequestCtx, st *sessionState, e *headerEditor) *Error {
	e.stripSessionHeaders(&ctx.Response.Header)
	return nil
}

func (s *Sessions) nodeStatus() []NodeStatus { return nil }

func (p *Proxy) serveSessionGet(w http.ResponseWriter, id string) {
	writeText(w, http.StatusNotFound, "sessions are not enabled")
}

func (p *Proxy) serveSessionDelete(w http.ResponseWriter, id string) {
	writeText(w, http.StatusNotFound, "sessions are not enabled")
}
