// Package defaults holds the defaults of the proxy's settings: the
// values a zero proxy.Settings or proxy.ServerOptions field takes, and
// the ones config's DefaultConfig names, so that a Proxy built by hand and
// one built from the default configuration behave alike. It is a leaf
// (std only), so that config can name them without importing the request
// path and fasthttp.
package defaults

import "time"

const (
	// ConnectTimeout bounds dialing a backend (timeouts.connect): a
	// backend that has not accepted a connection in 2s is taken as
	// unreachable, and the request goes to another (retries) while the
	// client still waits.
	ConnectTimeout = 2 * time.Second

	// ResponseTimeout bounds the wait for a backend's response headers
	// (timeouts.response). The body has ReadIdle instead, so 30s is how
	// long a backend may think before it answers; past it the client
	// gets 504.
	ResponseTimeout = 30 * time.Second

	// ReadIdle bounds the silence between two reads of a response body
	// (timeouts.read_idle): nginx's proxy_read_timeout and
	// proxy_send_timeout, 60s.
	ReadIdle = 60 * time.Second

	// TunnelIdle closes a WebSocket tunnel with no byte either way for
	// this long (timeouts.tunnel_idle): after an hour it is taken as
	// abandoned (its client gone without a close) and gives back its
	// places in max_tunnels and its backend's max_conns.
	TunnelIdle = time.Hour

	// MaxTunnels caps the WebSocket tunnels open at once (max_tunnels):
	// with an idle tunnel costing the proxy about 17 KiB, 10,000 of them
	// hold under 200 MiB.
	MaxTunnels = 10000

	// MaxBody caps a request body (max_body), 10 MiB: ten times nginx's
	// client_max_body_size, so that ordinary form and image uploads
	// pass, while what one client can make the proxy and a backend read
	// stays bounded.
	MaxBody = 10 << 20

	// ClientReadTimeout bounds reading a client's request
	// (timeouts.client_read): a client that sends no byte of its request
	// for 30s holds a connection for nothing (slow headers, a stalled
	// body).
	ClientReadTimeout = 30 * time.Second

	// ClientIdleTimeout closes an idle client keep-alive connection
	// (timeouts.client_idle) after 90s, a little over nginx's
	// keepalive_timeout of 75s, for a browser's next click.
	ClientIdleTimeout = 90 * time.Second
)
