package proxy

import (
	"log/slog"
	"time"

	"sessionproxy/compress"
	"sessionproxy/proxy/defaults"
	"sessionproxy/sessionstore"
)

// The defaults of Settings are package defaults' (a leaf that config
// names too); the response header's room is owned here.
const (
	// DefaultMaxResponseHeader is MaxResponseHeader's default: room for a
	// whole session of the store's default max_size (see
	// MaxResponseHeaderFor).
	DefaultMaxResponseHeader = sessionstore.DefaultMaxSize + sessionHeaderRoom

	// sessionHeaderRoom is what a response header holds beyond a whole
	// session: the status line and the backend's other headers.
	sessionHeaderRoom = 16 << 10
)

// MaxResponseHeaderFor is the MaxResponseHeader for a session store of
// max_size sessionMaxSize: a backend may set a whole session in one
// response, so the header must hold it plus room for the other headers
// (16 KiB).
func MaxResponseHeaderFor(sessionMaxSize int) int {
	return sessionMaxSize + sessionHeaderRoom
}

// Settings are the settings every Proxy of one configuration shares,
// whatever its upstream or route: cmd builds one value from the
// configuration and embeds it whole in each Proxy (the default upstream,
// the others, and the session-free Proxy of a route with session: false).
// A setting added here therefore reaches every route; copied field by
// field, one missed copy would take its default on some routes only.
// A zero field means the default given in its comment.
type Settings struct {
	// Retries is how many other backends a request may be tried on after
	// the first fails: any request whose connection could not be made, and
	// idempotent requests that timed out or got no valid answer. POST and
	// PATCH are never sent twice.
	Retries int

	// ConnectTimeout bounds dialing a backend (default 2s).
	ConnectTimeout time.Duration

	// ResponseTimeout bounds each try from sending the request to reading
	// the response's headers; past it the client gets 504 (default 30s).
	// The body is bounded by ReadIdle instead, so a long download or an
	// event stream is never cut while it flows.
	ResponseTimeout time.Duration

	// ReadIdle bounds the silence between two reads of a response body,
	// and between two writes of a streamed body to the backend (nginx's
	// proxy_read_timeout and proxy_send_timeout); past it the client's
	// connection is closed and the backend is charged a failure (default
	// 60s).
	ReadIdle time.Duration

	// TunnelIdle closes a WebSocket tunnel that carried no byte in either
	// direction for this long (default 1h).
	TunnelIdle time.Duration

	// MaxTunnels caps the WebSocket tunnels open at once across every
	// Proxy that shares Tunnels, so across reloads too; a handshake over
	// it gets 503 before any backend is dialed (default 10000). Each
	// backend's own cap, on requests in flight and tunnels together, is
	// its balancer.Backend.MaxConns.
	MaxTunnels int

	// MaxResponseHeader caps a backend's response header, status line
	// included; a larger one is an invalid response (502). A backend may
	// set a whole session in one response, so it must be at least the
	// store's max_size plus room for the other headers: max_size +
	// 16 KiB (default 80 KiB, for the default max_size of 64 KiB). Each
	// request in flight to a backend holds a read buffer of this size.
	MaxResponseHeader int

	// UnderscoresInHeaders passes request headers whose names contain "_"
	// (nginx's underscores_in_headers). By default they are dropped:
	// WSGI, CGI and PHP backends read "_" and "-" alike, so X_Real_IP
	// would pass for X-Real-IP. A name that starts with X-Session- once
	// "_" is read as "-" is dropped either way.
	UnderscoresInHeaders bool

	// Logger receives errors and backend state changes (default slog.Default()).
	Logger *slog.Logger

	// Metrics counts requests (default: a new set, see NewMetrics).
	Metrics *Metrics

	// Tunnels records the open WebSocket tunnels, for MaxTunnels and for
	// a shutdown to close them: give every Proxy of a process the same
	// one, across reloads too, as tunnels outlive the Proxy that opened
	// them (default: a registry of p's own).
	Tunnels *Tunnels

	// AccessLog, if not nil, logs each request once (AccessLogger): when
	// the response is ready, or for a streamed body once it is relayed.
	// An *AccessLog is held (AccessLog.Hold) until a streamed body's line
	// is written.
	AccessLog AccessLogger

	// ErrorPages, if not nil, gives the proxy's own errors HTML bodies.
	ErrorPages *ErrorPages

	// Compression, if not nil, compresses static files' answers, and
	// backends' when it is Proxied (package compress; nil: nothing is
	// compressed).
	Compression *compress.Compressor
}

// orDefault returns v, or def when v is 0 or less: a zero setting means
// its default.
func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Settings) connectTimeout() time.Duration {
	return orDefault(s.ConnectTimeout, defaults.ConnectTimeout)
}

func (s *Settings) responseTimeout() time.Duration {
	return orDefault(s.ResponseTimeout, defaults.ResponseTimeout)
}

func (s *Settings) readIdle() time.Duration { return orDefault(s.ReadIdle, defaults.ReadIdle) }

func (s *Settings) tunnelIdle() time.Duration { return orDefault(s.TunnelIdle, defaults.TunnelIdle) }

func (s *Settings) maxTunnels() int { return orDefault(s.MaxTunnels, defaults.MaxTunnels) }

func (s *Settings) maxResponseHeader() int {
	return orDefault(s.MaxResponseHeader, DefaultMaxResponseHeader)
}

func (s *Settings) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}
