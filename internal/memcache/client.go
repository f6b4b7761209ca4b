// Package memcache is a memcached client for the session store: the
// pipelined meta-protocol commands on a request's path (Client), the key
// listing of lru_crawler metadump (Metadump) and the stats a node monitor
// reads (ReadStats). It speaks memcached's text and meta protocols
// (memcached 1.6 or newer) and knows nothing of what the values hold: the
// client flags stored with a value are the caller's.
package memcache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a pipelined memcached client for one server, for the
// operations on a request's path: get with its CAS id, set,
// compare-and-swap and add, in memcached's meta protocol. A pooled client
// that sends one command per connection and waits for its reply makes 64
// concurrent requests cost 64 writes and 64 reads on each side. Here
// concurrent callers queue their commands on one of a few connections; the
// caller that finds no write in progress writes everything queued in one
// system call, and one reader per connection reads the answers, many per
// read, in the order memcached gives them (the order of the commands).
//
// Issuing is split from waiting (Start, then Call.Wait), so that a caller
// can have a command in flight on every replica at once without a
// goroutine per replica.
//
// A Client neither marks its server down nor retries: a call that fails
// on a broken connection fails, and the next one dials again. Tell a
// failed server from an answer about a key with IsAnswer.
type Client struct {
	addr    string
	timeout time.Duration
	conns   []conn
	next    atomic.Uint32
	shut    atomic.Bool // Shutdown was called: a link is dropped once written
}

// DefaultConns is the connections per server New opens when asked for
// none. One makes the largest batches: with 64 clients writing sessions to
// two nodes, one connection per node gave 1.1 times the requests per
// second of two (bench/README.md).
const DefaultConns = 1

// maxInflight bounds the commands written and not yet answered on one
// connection; a caller past it waits for the reader (back-pressure rather
// than an unbounded queue when a node slows down).
const maxInflight = 4096

// conn is one connection slot, dialled again after a failure.
type conn struct {
	mu      sync.Mutex // protects the fields below
	link    *link      // nil: not connected
	buf     []byte     // commands queued, not yet written
	queue   []*Call    // their calls, in order
	writing bool       // a caller is writing: others only queue

	spareBuf   []byte  // the last batch written, for the next queue
	spareQueue []*Call // its calls' slice
}

// link is one TCP connection and its reader. Calls written to it go to
// inflight in write order, and the reader answers them in that order.
// After an error every call on the link fails with it.
type link struct {
	conn     net.Conn
	inflight chan *Call
	failed   atomic.Pointer[error]
}

// Op is the kind of a Call.
type Op uint8

// The commands a Call can make.
const (
	OpGet   Op = iota // mg <key> v c: the value and its CAS id
	OpFlags           // mg <key> f: the client flags only
	OpSet             // ms: store whatever is held
	OpCAS             // ms C<cas>: store only over that version
	OpAdd             // ms ME: store only if absent
)

// Call is one command and, once Wait returns, its answer. Calls are
// pooled: get one from NewCall and give it back with Release.
type Call struct {
	op   Op
	val  []byte // the value to store; for a get, the value read, in buf
	cas  uint64 // the CAS id to check; for a get, the one read
	flag uint32 // client flags: stored with a value, or read by OpFlags
	exp  int32  // memcached's expiry
	err  error
	done chan struct{}
	seen bool   // Wait has had the answer
	buf  []byte // a get's read buffer, kept with the pooled call
	end  int    // where its command ends in the batch it is written in

	// lead is the first call of c's group (Join), whose done channel
	// the group's one wake-up goes to; nil when c is alone. In the lead,
	// pending counts the group's calls not answered yet.
	lead    *Call
	pending atomic.Int32
}

var calls = sync.Pool{New: func() any { return &Call{done: make(chan struct{}, 1)} }}

// NewCall returns a pooled call for op. val, flags and exp are what a
// store command stores (val is not copied: keep it unchanged until Wait
// returns); cas is the CAS id an OpCAS checks. A get takes none of them.
func NewCall(op Op, val []byte, cas uint64, flags uint32, exp int32) *Call {
	c := calls.Get().(*Call)
	c.op, c.val, c.cas, c.flag, c.exp, c.err, c.seen = op, val, cas, flags, exp, nil, false
	c.lead = nil
	if op == OpGet || op == OpFlags {
		c.val, c.cas, c.flag, c.exp = nil, 0, 0, 0
	}
	return c
}

// Release returns c to the pool. A get's value is in c's own buffer,
// which the next get reuses: it must not be used afterwards.
func (c *Call) Release() {
	c.val, c.err = nil, nil
	if cap(c.buf) > maxKeptValue {
		c.buf = nil // one huge value must not pin its buffer in the pool
	}
	calls.Put(c)
}

// maxKeptValue bounds the read buffer a pooled call keeps: above the
// sessions of most applications, so that cold reads allocate nothing.
const maxKeptValue = 64 << 10

// Wait blocks until c is answered and returns its error: nil, one of
// ErrCacheMiss, ErrNotStored, ErrCASConflict or ErrServer (answers about
// the key, see IsAnswer), or the failure of the connection or server.
// Once answered, Wait returns the same error again at once. A call of a
// group (Join) waits for the whole group.
func (c *Call) Wait() error {
	if !c.seen {
		w := c
		if c.lead != nil {
			w = c.lead
		}
		if !w.seen {
			<-w.done
			w.seen = true
		}
		c.seen = true
	}
	return c.err
}

// Join makes calls one group, waited for together (WaitAll): the waiter
// is woken once, by the last answer, instead of once per answer. A write
// to two replicas is two calls on two connections, answered by two
// readers a few microseconds apart; waited for one by one, the second
// answer often finds the waiter parked again, and each wake-up is a trip
// through the scheduler. Join them before starting them, and release
// none before WaitAll (or every call's Wait) has returned.
func Join(calls []*Call) {
	if len(calls) < 2 {
		return
	}
	lead := calls[0]
	lead.pending.Store(int32(len(calls)))
	for _, c := range calls {
		c.lead = lead
	}
}

// WaitAll waits until every call of calls is answered; their Wait then
// returns at once. calls are a group made by Join, or calls alone.
func WaitAll(calls []*Call) {
	for _, c := range calls {
		c.Wait()
	}
}

// answered hands c's answer (c.err, and a get's value) to its waiter, or
// counts it in its group and wakes the group's waiter once all are in.
// c must not be touched afterwards: its waiter may release it.
func (c *Call) answered() {
	l := c.lead
	if l == nil {
		c.done <- struct{}{}
	} else if l.pending.Add(-1) == 0 {
		l.done <- struct{}{}
	}
}

// Value is the value an OpGet read, valid until c is released.
func (c *Call) Value() []byte { return c.val }

// CAS is the CAS id an OpGet read.
func (c *Call) CAS() uint64 { return c.cas }

// Flags is the client flags an OpFlags read (0 when the item has none).
func (c *Call) Flags() uint32 { return c.flag }

// New returns a client for the memcached server at addr (host:port) that
// spreads its commands over conns connections (DefaultConns when 0 or
// less), each dialled when first needed. timeout bounds each dial, each
// write and the wait for each answer.
func New(addr string, timeout time.Duration, conns int) *Client {
	if conns <= 0 {
		conns = DefaultConns
	}
	return &Client{addr: addr, timeout: timeout, conns: make([]conn, conns)}
}

// The answers about a key or an item, after which the connection is still
// in step (IsAnswer).
var (
	// ErrCacheMiss: the server holds no item under the key (a get, or
	// a CAS with nothing to swap).
	ErrCacheMiss = errors.New("memcache: cache miss")
	// ErrNotStored: an add found the key already held.
	ErrNotStored = errors.New("memcache: item not stored")
	// ErrCASConflict: a CAS found the item changed since its CAS id was
	// read.
	ErrCASConflict = errors.New("memcache: compare-and-swap conflict")
	// ErrServer marks memcached's SERVER_ERROR answers: the server
	// refused one item (over its item size limit, out of memory) but is
	// in step and up.
	ErrServer = errors.New("SERVER_ERROR")
)

// ErrClosed fails the calls on a connection dropped by Close or Shutdown.
var ErrClosed = errors.New("memcache: connection closed")

// IsAnswer reports whether err is memcached's answer about a key or an
// item (a miss, a refused store, SERVER_ERROR), as opposed to a failure of
// the connection or the server.
func IsAnswer(err error) bool {
	return errors.Is(err, ErrCacheMiss) || errors.Is(err, ErrNotStored) ||
		errors.Is(err, ErrCASConflict) || errors.Is(err, ErrServer)
}

// Get returns key's value and CAS id in c, or ErrCacheMiss. c is never
// nil: release it after reading its value, whatever the error.
func (p *Client) Get(key []byte) (c *Call, err error) {
	c = NewCall(OpGet, nil, 0, 0, 0)
	p.Start(c, key)
	return c, c.Wait()
}

// Store runs an OpSet, OpCAS or OpAdd of val under key with the given
// client flags and expiry, and waits for it.
func (p *Client) Store(op Op, key []byte, val []byte, cas uint64, flags uint32, exp int32) error {
	c := NewCall(op, val, cas, flags, exp)
	p.Start(c, key)
	err := c.Wait()
	c.Release()
	return err
}

// Start queues c's command for key, writing the queue unless another
// caller is, and returns without waiting for the answer (c.Wait does).
// key is copied into the queue before Start returns.
func (p *Client) Start(c *Call, key []byte) {
	mc := &p.conns[p.next.Add(1)%uint32(len(p.conns))]
	mc.mu.Lock()
	if err := mc.connect(p); err != nil {
		mc.mu.Unlock()
		c.err = err
		c.answered()
		return
	}
	mc.buf = c.encode(mc.buf, key)
	c.end = len(mc.buf)
	mc.queue = append(mc.queue, c)
	mc.write(p)
}

// StartAll is Start for several calls at once, calls[i] for keys[i],
// queued together so that they leave in one write however many there are.
func (p *Client) StartAll(calls []*Call, keys [][]byte) {
	mc := &p.conns[p.next.Add(1)%uint32(len(p.conns))]
	mc.mu.Lock()
	if err := mc.connect(p); err != nil {
		mc.mu.Unlock()
		for _, c := range calls {
			c.err = err
			c.answered()
		}
		return
	}
	for i, c := range calls {
		mc.buf = c.encode(mc.buf, keys[i])
		c.end = len(mc.buf)
		mc.queue = append(mc.queue, c)
	}
	mc.write(p)
}

// write writes the queue unless another caller is writing it. It is
// called with mc.mu held and returns with it released.
func (mc *conn) write(p *Client) {
	if mc.writing {
		mc.mu.Unlock()
		return
	}
	mc.writing = true
	// Let the goroutines that are ready to run queue their commands
	// before the write: on a busy proxy many requests reach this point
	// within microseconds of each other, and without the yield each would
	// find the last write just done and make its own. Measured: 1.4 times
	// the session writes per second with it, and a lower p99.
	mc.mu.Unlock()
	runtime.Gosched()
	mc.mu.Lock()
	mc.flush(p) // unlocks
}

// encode appends c's command for key to b.
func (c *Call) encode(b, key []byte) []byte {
	switch c.op {
	case OpGet:
		b = append(b, "mg "...)
		b = append(b, key...)
		return append(b, " v c\r\n"...)
	case OpFlags:
		b = append(b, "mg "...)
		b = append(b, key...)
		return append(b, " f\r\n"...)
	}
	b = append(b, "ms "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(c.val)), 10)
	b = append(b, " T"...)
	b = strconv.AppendInt(b, int64(c.exp), 10)
	if c.flag != 0 {
		b = append(b, " F"...)
		b = strconv.AppendUint(b, uint64(c.flag), 10)
	}
	switch c.op {
	case OpCAS:
		b = append(b, " C"...)
		b = strconv.AppendUint(b, c.cas, 10)
	case OpAdd:
		b = append(b, " ME"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, c.val...)
	return append(b, "\r\n"...)
}

// connect dials the slot's connection if it has none or its last one
// failed. mc.mu is held.
func (mc *conn) connect(p *Client) error {
	if mc.link != nil && (mc.link.failed.Load() == nil || mc.writing) {
		// A writer in progress finds the failure and fails its queue.
		return nil
	}
	if mc.link != nil {
		close(mc.link.inflight) // the old reader ends once it has failed the rest
		mc.link = nil
	}
	c, err := net.DialTimeout("tcp", p.addr, p.timeout)
	if err != nil {
		return err
	}
	l := &link{conn: c, inflight: make(chan *Call, maxInflight)}
	mc.link = l
	go l.read(p.timeout)
	return nil
}

// flush writes what is queued for as long as something is. It is called
// with mc.mu held and returns with it released. The queue's buffers and
// the ones being written swap places, so that steady traffic reuses the
// same two of each instead of allocating a batch's worth per write.
func (mc *conn) flush(p *Client) {
	timeout := p.timeout
	for len(mc.queue) > 0 {
		l := mc.link
		out, calls := mc.buf, mc.queue
		mc.buf, mc.queue = mc.spareBuf[:0], mc.spareQueue[:0]
		mc.spareBuf, mc.spareQueue = nil, nil
		mc.mu.Unlock()
		// In write order, before the write: the reader must know what
		// it reads the answer to, and reads answers while a large batch
		// is still being written. Sending outside mu lets the reader
		// drain a full channel while new callers queue. When the channel
		// is full, the commands of the calls in it are written first:
		// the reader waits for their answers, and would wait until its
		// deadline (failing the link) for commands still unwritten.
		// (A call's end is read before it is sent: once answered, it
		// may be released and reused.)
		written, sent := 0, 0 // bytes written; end of the commands sent
		for _, c := range calls {
			end := c.end
			select {
			case l.inflight <- c:
			default:
				l.write(out[written:sent], timeout)
				written = sent
				l.inflight <- c
			}
			sent = end
		}
		l.write(out[written:], timeout)
		clear(calls)
		if cap(out) > maxKeptBatch {
			out = nil // one huge batch must not pin its buffer forever
		}
		mc.mu.Lock()
		mc.spareBuf, mc.spareQueue = out[:0], calls[:0]
	}
	mc.writing = false
	if l := mc.link; l != nil && (l.failed.Load() != nil || p.shut.Load()) {
		// It failed during the write (close leaves a link being written
		// to the writer), or it was dialled for a request that outlived
		// its client's Shutdown: no call goes to it any more, and its
		// reader, once it has answered or failed the calls left, must
		// end and close it, also when no later call comes.
		close(l.inflight)
		mc.link = nil
	}
	mc.mu.Unlock()
}

// write writes b unless the link failed, and fails it on an error.
func (l *link) write(b []byte, timeout time.Duration) {
	if len(b) == 0 || l.failed.Load() != nil {
		return
	}
	l.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := l.conn.Write(b); err != nil {
		l.fail(err)
	}
}

// maxKeptBatch bounds the write buffer a connection keeps between batches.
const maxKeptBatch = 1 << 20

// fail records the link's first error and closes its connection, which
// also wakes a reader blocked on it.
func (l *link) fail(err error) {
	if l.failed.CompareAndSwap(nil, &err) {
		l.conn.Close()
	}
}

// read answers the calls in write order until the link is dropped.
func (l *link) read(timeout time.Duration) {
	defer l.conn.Close()
	br := bufio.NewReaderSize(&deadlineReader{l.conn, timeout}, 64<<10)
	for c := range l.inflight {
		if e := l.failed.Load(); e != nil {
			c.err = *e
		} else {
			if err := readAnswer(br, c); err != nil && !IsAnswer(err) {
				l.fail(err)
				c.err = err
			}
		}
		c.answered()
	}
}

// lateGrace is how long a read whose deadline passed waits, once more,
// for bytes that may already be there.
const lateGrace = 2 * time.Millisecond

// deadlineReader bounds each read from the connection by the timeout:
// the read deadline is set once per read system call, which brings in a
// batch's answers at once, rather than once per answer. The reader reads
// only while a call waits for its answer, so a node that stops answering
// still fails that call after the timeout.
//
// It also tells a server that did not answer in time from a process that
// did not run in time. When a process is not scheduled for longer than
// the timeout (a loaded machine, a stop), its deadline timer and the
// answer that came meanwhile are both due when it runs again, and the
// timer is seen first: the read fails with the answer in the socket's
// buffer, and the node, healthy, is counted down. Every call in flight on
// every node fails at once that way (the fault harness saw a proxy count
// all three nodes down in the same millisecond). So a read that timed out
// having read nothing tries once more, for lateGrace: bytes already there
// are read, a server that is silent still fails the read, lateGrace later.
type deadlineReader struct {
	conn    net.Conn
	timeout time.Duration
}

func (r *deadlineReader) Read(b []byte) (int, error) {
	r.conn.SetReadDeadline(time.Now().Add(r.timeout))
	n, err := r.conn.Read(b)
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	r.conn.SetReadDeadline(time.Now().Add(lateGrace))
	return r.conn.Read(b)
}

// readAnswer reads the answer to c from br and sets c.err (and, for a
// get, c.val and c.cas). mg answers "VA <size> c<cas>" and the value, or
// "EN"; mg <key> f answers "HD f<flags>" or "EN"; ms answers "HD", "NS"
// (not stored), "EX" (CAS mismatch) or "NF" (no item to swap). The error
// returned is c.err, or one that leaves the connection out of step.
func readAnswer(br *bufio.Reader, c *Call) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return fmt.Errorf("memcache: answer not terminated: %q", answerForLog(line))
	}
	line = line[:len(line)-2]
	get := c.op == OpGet || c.op == OpFlags
	switch {
	case c.op == OpFlags && len(line) >= 2 && string(line[:2]) == "HD":
		flag, err := parseFlagsHD(line[2:])
		if err != nil {
			return err
		}
		c.flag, c.err = flag, nil
		return nil
	case c.op == OpGet && len(line) > 3 && string(line[:3]) == "VA ":
		size, cas, err := parseVA(line[3:])
		if err != nil {
			return err
		}
		if cap(c.buf) < size+2 {
			c.buf = make([]byte, size+2)
		}
		val := c.buf[:size+2]
		if _, err := io.ReadFull(br, val); err != nil {
			return err
		}
		if val[size] != '\r' || val[size+1] != '\n' {
			return errors.New("memcache: value not terminated")
		}
		c.val, c.cas, c.err = val[:size], cas, nil
		return nil
	case get && string(line) == "EN":
		c.err = ErrCacheMiss
	case !get && string(line) == "HD":
		c.err = nil
	case !get && string(line) == "NS":
		c.err = ErrNotStored
	case !get && string(line) == "EX":
		c.err = ErrCASConflict
	case !get && string(line) == "NF":
		c.err = ErrCacheMiss
	case len(line) >= 12 && string(line[:12]) == "SERVER_ERROR":
		// memcached has read (and dropped) the value: still in step.
		c.err = fmt.Errorf("memcache: %s: %w", line, ErrServer)
	default:
		return fmt.Errorf("memcache: unexpected answer %q", answerForLog(line))
	}
	return c.err
}

// maxValue bounds a value size read from a VA line, far above memcached's
// own item limit: a larger one is a broken stream, not a value.
const maxValue = 64 << 20

// parseVA reads "<size> <flags>" of a VA line, of which only c<cas> was
// asked for.
func parseVA(rest []byte) (size int, cas uint64, err error) {
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		size = size*10 + int(rest[i]-'0')
		if size > maxValue {
			return 0, 0, fmt.Errorf("memcache: value size over %d", maxValue)
		}
		i++
	}
	if i == 0 || (i < len(rest) && rest[i] != ' ') {
		return 0, 0, fmt.Errorf("memcache: bad VA line %q", rest)
	}
	for i < len(rest) {
		i++ // the space
		j := i
		for j < len(rest) && rest[j] != ' ' {
			j++
		}
		if flag := rest[i:j]; len(flag) > 1 && flag[0] == 'c' {
			var n uint64
			for _, d := range flag[1:] {
				if d < '0' || d > '9' || n > (1<<64-1-uint64(d-'0'))/10 {
					return 0, 0, fmt.Errorf("memcache: bad CAS %q", flag)
				}
				n = n*10 + uint64(d-'0')
			}
			cas = n
		}
		i = j
	}
	return size, cas, nil
}

// parseFlagsHD reads the " f<flags>" that follows HD in the answer to
// mg <key> f (memcached omits it for flags 0). Flags memcached adds
// unasked after it (X and W for an item marked stale, Z for a win token
// already sent) are read past: the answer is in step all the same.
func parseFlagsHD(rest []byte) (uint32, error) {
	if len(rest) == 0 {
		return 0, nil
	}
	if len(rest) < 3 || rest[0] != ' ' || rest[1] != 'f' {
		return 0, fmt.Errorf("memcache: bad flags answer %q", rest)
	}
	var n uint64
	i := 2
	for ; i < len(rest) && rest[i] != ' '; i++ {
		d := rest[i]
		if d < '0' || d > '9' || n > 1<<32-1 {
			return 0, fmt.Errorf("memcache: bad flags answer %q", rest)
		}
		n = n*10 + uint64(d-'0')
	}
	if i == 2 || n > 1<<32-1 {
		return 0, fmt.Errorf("memcache: bad flags answer %q", rest)
	}
	return uint32(n), nil
}

// Shutdown is Close for good: a caller that outlives it may still read or
// write (and dial again), but each link is dropped as soon as its calls
// are written, so that nothing stays open.
func (p *Client) Shutdown() {
	p.shut.Store(true)
	p.Close()
}

// Close drops every connection: calls in flight fail with ErrClosed, later
// ones dial again. Call it when the server failed or may have restarted,
// so that nothing on the old connections is trusted.
func (p *Client) Close() {
	for i := range p.conns {
		mc := &p.conns[i]
		mc.mu.Lock()
		if mc.link != nil {
			mc.link.fail(ErrClosed)
			if !mc.writing {
				close(mc.link.inflight)
				mc.link = nil
			}
		}
		mc.mu.Unlock()
	}
}

// answerForLog is what an error, and so a log line, may show of an answer
// line the reader did not expect. Out of step with the stream, the line
// may be a stored value, which may hold secrets (sessionstore's values
// hold attributes and, after a rotation, the new 22-byte session ID): past
// memcached's own error lines, only a prefix of answerShown bytes is shown.
func answerForLog(line []byte) []byte {
	const errMax = 120
	switch {
	case bytes.HasPrefix(line, []byte("CLIENT_ERROR")), bytes.HasPrefix(line, []byte("SERVER_ERROR")),
		bytes.HasPrefix(line, []byte("ERROR")):
		return line[:min(len(line), errMax)]
	}
	return line[:min(len(line), answerShown)]
}

// answerShown is how much of an unexpected answer an error shows: short
// of a secret worth guessing the rest of (a session ID is 22 bytes).
const answerShown = 20
