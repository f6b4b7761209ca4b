package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The load generator of the fault scenario. wrk reports only totals; a
// fault needs req/s, p99 and errors second by second, and a check that
// every session kept its writes, so the clients are written here.

// Latencies are kept in a fixed log-linear histogram per second of the run
// (HdrHistogram's layout): values below 64 µs exactly, above that 32
// sub-buckets per power of two, about 3% precision, up to 2^24 µs (16.8 s;
// longer goes to the last bucket). 640 counters a second, whatever the
// request rate, so memory is bounded by the run's length.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histMaxBits = 24
	histMaxUs   = 1<<histMaxBits - 1
	histSize    = (histMaxBits-histSubBits)*histSub + histSub
)

func histIndex(us uint64) int {
	us = min(us, histMaxUs)
	shift := max(bits.Len64(us)-histSubBits-1, 0)
	return shift*histSub + int(us>>shift)
}

// histUpper is the largest value that falls in bucket i (HdrHistogram's
// "highest equivalent value"): percentiles never flatter the proxy.
func histUpper(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	mant := uint64(i - shift*histSub)
	return (mant+1)<<shift - 1
}

// second is what the clients record for one second of the run. Safe for
// concurrent use: every field is updated atomically, except kinds.
type second struct {
	requests atomic.Int64 // completed, answered or failed
	errors   atomic.Int64 // non-2xx answers and transport errors
	stale    atomic.Int64 // 2xx answers whose session had lost the client's last write
	hist     [histSize]atomic.Uint32

	mu    sync.Mutex       // protects kinds
	kinds map[string]int64 // errors and stale answers by kind; rare, so a mutex is fine
}

// maxKinds bounds the kinds kept per second: an error message that varies
// (it names a port, say) must not grow the map without end.
const maxKinds = 16

func (s *second) count(kind string) {
	s.mu.Lock()
	if s.kinds == nil {
		s.kinds = map[string]int64{}
	}
	if _, ok := s.kinds[kind]; !ok && len(s.kinds) >= maxKinds {
		kind = "other"
	}
	s.kinds[kind]++
	s.mu.Unlock()
}

func (s *second) percentile(q float64) float64 {
	var total uint64
	for i := range s.hist {
		total += uint64(s.hist[i].Load())
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range s.hist {
		seen += uint64(s.hist[i].Load())
		if seen >= rank {
			return float64(histUpper(i)) / 1000
		}
	}
	return float64(histUpper(histSize-1)) / 1000
}

// max returns the slowest latency of the second in ms (its bucket's upper
// end): a stall that hits every client once, such as a frozen memcached's
// timeout, is under 1% of a second's requests and so invisible in p99.
func (s *second) max() float64 {
	for i := len(s.hist) - 1; i >= 0; i-- {
		if s.hist[i].Load() > 0 {
			return float64(histUpper(i)) / 1000
		}
	}
	return 0
}

// secondStats is one row of the per-second table.
type secondStats struct {
	T        int              `json:"t"` // start of the second, from the start of recording
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	Stale    int64            `json:"stale"`
	P50      float64          `json:"p50_ms"`
	P99      float64          `json:"p99_ms"`
	Max      float64          `json:"max_ms"`
	Kinds    map[string]int64 `json:"kinds,omitempty"`
}

// loadOptions configure one load run.
type loadOptions struct {
	Addr     string        // the proxy, host:port on loopback
	Cookie   string        // the session cookie's name
	Clients  int           // concurrent clients, one connection and one session each
	Warmup   time.Duration // run but not recorded: sessions created, connections open
	Duration time.Duration // recorded
	Timeout  time.Duration // per request, as a browser would give up
}

// load is one run of the clients. Start it with startLoad; t0 is when
// recording begins.
type load struct {
	opts    loadOptions
	t0      time.Time
	seconds []second
	clients []*client
	wg      sync.WaitGroup
}

// client is a browser: one keep-alive connection, one session cookie, and
// requests one after another, each writing the next value of its sequence
// into the session and reading back the value the session held before.
type client struct {
	id     int
	hc     *fasthttp.HostClient
	cookie []byte // "name=value", or nil before the first Set-Cookie

	sent      uint64 // sequence number of the last request sent
	confirmed uint64 // last sequence number answered 2xx: the session must hold it or later
	sessions  int    // session cookies received; more than one means a session was replaced
}

func startLoad(o loadOptions) *load {
	l := &load{opts: o, seconds: make([]second, int(o.Duration/time.Second))}
	l.t0 = time.Now().Add(o.Warmup)
	for i := 0; i < o.Clients; i++ {
		c := &client{id: i + 1, hc: &fasthttp.HostClient{
			Addr:     o.Addr,
			MaxConns: 1, // one connection per client, like a browser tab
			// Every failure is counted, never hidden by a retry.
			MaxIdemponentCallAttempts: 1,
			RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		}}
		l.clients = append(l.clients, c)
		l.wg.Add(1)
		go l.run(c)
	}
	return l
}

// wait returns once every client has finished: at t0 + Duration, plus at
// most one request timeout.
func (l *load) wait() { l.wg.Wait() }

func (l *load) run(c *client) {
	defer l.wg.Done()
	defer c.hc.CloseIdleConnections()
	end := l.t0.Add(l.opts.Duration)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	prefix := "http://" + l.opts.Addr + "/write?v="
	var uri []byte
	for {
		start := time.Now()
		if !start.Before(end) {
			return
		}
		c.sent++
		req.Reset()
		// Built in place: the generator shares two cores with the proxy.
		uri = c.appendValue(append(uri[:0], prefix...), c.sent)
		req.SetRequestURIBytes(uri)
		if c.cookie != nil {
			req.Header.SetBytesV("Cookie", c.cookie)
		}
		err := c.hc.DoTimeout(req, resp, l.opts.Timeout)
		done := time.Now()
		b := int(done.Sub(l.t0) / time.Second)
		var s *second
		if done.After(l.t0) && b < len(l.seconds) {
			s = &l.seconds[b]
			s.requests.Add(1)
			s.hist[histIndex(uint64(done.Sub(start).Microseconds()))].Add(1)
		}
		if kind := c.check(err, resp, l.opts.Cookie); kind != "" && s != nil {
			if isStale(kind) {
				s.stale.Add(1)
			} else {
				s.errors.Add(1)
			}
			s.count(kind)
		}
	}
}

// appendValue appends "c<id>.<seq>", the value request seq writes.
func (c *client) appendValue(b []byte, seq uint64) []byte {
	b = append(b, 'c')
	b = strconv.AppendInt(b, int64(c.id), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, seq, 10)
}

// Kinds of failure a client records. Errors are failed requests; stale
// answers are 2xx answers whose session had lost a write.
const (
	kindTimeout    = "timeout"
	kindConnClosed = "connection closed"
	kindDial       = "connection refused"
	staleNew       = "stale: new session"
	staleOlder     = "stale: older value"
	staleForeign   = "stale: another client's value"
)

func isStale(kind string) bool { return len(kind) > 6 && kind[:6] == "stale:" }

// check reads one answer: it follows the session cookie and compares the
// value the session held before this request with what the client last
// wrote. It returns the kind of failure, or "".
func (c *client) check(err error, resp *fasthttp.Response, cookieName string) string {
	if err != nil {
		return errKind(err)
	}
	if code := resp.StatusCode(); code < 200 || code > 299 {
		return "status " + strconv.Itoa(code)
	}
	replaced := false
	if v, ok := setCookie(resp, cookieName); ok {
		if v == nil { // expired: the proxy no longer knows the session
			c.cookie = nil
		} else {
			if !bytes.Equal(c.cookie, v) {
				replaced = c.cookie != nil
				c.sessions++
			}
			c.cookie = v
		}
	}
	prev := resp.Body()
	kind := ""
	switch {
	case replaced || (c.confirmed > 0 && len(prev) == 0):
		kind = staleNew
	case len(prev) > 0:
		id, seq, ok := parseValue(prev)
		switch {
		case !ok || id != c.id:
			kind = staleForeign
		case seq < c.confirmed:
			kind = staleOlder
		}
	}
	c.confirmed = c.sent
	return kind
}

// parseValue splits "c<id>.<seq>".
func parseValue(v []byte) (id int, seq uint64, ok bool) {
	if len(v) < 4 || v[0] != 'c' {
		return 0, 0, false
	}
	dot := bytes.IndexByte(v, '.')
	if dot < 0 {
		return 0, 0, false
	}
	id, err1 := strconv.Atoi(string(v[1:dot]))
	seq, err2 := strconv.ParseUint(string(v[dot+1:]), 10, 64)
	return id, seq, err1 == nil && err2 == nil
}

// setCookie returns the "name=value" of the response's session cookie and
// true if it sets one; nil and true if it expires it.
func setCookie(resp *fasthttp.Response, name string) ([]byte, bool) {
	var out []byte
	found := false
	for key, value := range resp.Header.Cookies() {
		if string(key) != name {
			continue
		}
		found = true
		nv, attrs, _ := bytes.Cut(value, []byte(";"))
		_, v, _ := bytes.Cut(nv, []byte("="))
		if len(v) == 0 || bytes.Contains(attrs, []byte("Max-Age=0")) {
			out = nil
			continue
		}
		out = append(out[:0:0], bytes.TrimSpace(nv)...) // value is only valid in the loop
	}
	return out, found
}

func errKind(err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return kindConnClosed
	case errors.As(err, &oe) && oe.Op == "dial":
		return kindDial
	}
	return "error: " + err.Error()
}

// stats returns the per-second table; call it after wait.
func (l *load) stats() []secondStats {
	out := make([]secondStats, len(l.seconds))
	for i := range l.seconds {
		s := &l.seconds[i]
		out[i] = secondStats{
			T: i, Requests: s.requests.Load(), Errors: s.errors.Load(), Stale: s.stale.Load(),
			P50: s.percentile(0.50), P99: s.percentile(0.99), Max: s.max(), Kinds: s.kinds,
		}
	}
	return out
}

// clientState is what the final check needs of one client.
type clientState struct {
	ID        int    `json:"id"`
	Cookie    string `json:"-"`
	Sent      uint64 `json:"sent"`
	Confirmed uint64 `json:"confirmed"`
	Sessions  int    `json:"sessions"`
}

func (l *load) clientStates() []clientState {
	out := make([]clientState, len(l.clients))
	for i, c := range l.clients {
		out[i] = clientState{ID: c.id, Cookie: string(c.cookie), Sent: c.sent, Confirmed: c.confirmed, Sessions: c.sessions}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// peekCheck reads client c's session through the proxy at addr (GET /peek
// with its cookie) and returns "kept" if it holds the client's last
// confirmed write or a later one it sent, "lost" if the answer shows
// anything else, or "unverified" if no 2xx answer came in three tries.
// detail says what was seen.
func peekCheck(addr string, c clientState) (verdict, detail string) {
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1, MaxIdemponentCallAttempts: 1}
	defer hc.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var last string
	for try := 0; try < 3; try++ {
		if try > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		req.Reset()
		req.SetRequestURI("http://" + addr + "/peek")
		req.Header.Set("Cookie", c.Cookie)
		err := hc.DoTimeout(req, resp, 2*time.Second)
		switch {
		case err != nil:
			last = errKind(err)
			continue
		case resp.StatusCode() < 200 || resp.StatusCode() > 299:
			last = "status " + strconv.Itoa(resp.StatusCode())
			continue
		}
		v := resp.Body()
		id, seq, ok := parseValue(v)
		if ok && id == c.ID && seq >= c.Confirmed && seq <= c.Sent {
			return "kept", ""
		}
		return "lost", fmt.Sprintf("client %d: session holds %q, last write confirmed c%d.%d", c.ID, v, c.ID, c.Confirmed)
	}
	return "unverified", fmt.Sprintf("client %d: no answer (%s)", c.ID, last)
}
