package compress

import (
	"io"
	"sync"

	"github.com/valyala/fasthttp"

	"sessionproxy/compress/policy"
	"sessionproxy/static"
)

// Movable is a body stream that can be moved out of the response holding
// it without being closed. fasthttp has no way to take a body stream out
// of a Response (SetBodyStream closes the one it replaces), so the stream
// is told to let its next close pass: the compressing stream that
// replaces it closes it instead. proxy's backend bodies and static's file
// bodies are Movable; a body that is not is sent uncompressed.
type Movable interface {
	io.Reader
	// SkipNextClose makes the next Close or CloseWithError do nothing.
	SkipNextClose()
}

const (
	// readSize is how much of the source one read asks for.
	readSize = 16 << 10
	// sendAt is how much compressed output a stream that is not flushed
	// per read gathers before it goes to the client as one chunk.
	sendAt = 32 << 10
)

var readBufs = sync.Pool{New: func() any { return new([readSize]byte) }}

// stream is a response body compressed as it is sent: it reads its
// source, the uncompressed body, and gives the compressed bytes. With
// flush set (a body of unknown length, an event stream) every read of
// the source is flushed through the encoder and sent at once, so the
// client gets each piece when the proxy would have sent it uncompressed
// (CONTRACT.md section 7); otherwise output is sent once sendAt of it is
// gathered. It holds one encoder, a read buffer and the output not yet
// sent, whatever the body's length. fasthttp's server reads it (through
// WriteTo) and closes it from the connection's goroutine: no lock.
type stream struct {
	src   io.Reader // the uncompressed body; closed with the stream
	e     policy.Encoding
	enc   encoder // nil once the encoder is closed and given back
	flush bool

	out  []byte    // compressed, not yet sent
	off  int       // of out, what Read has given already
	to   io.Writer // WriteTo's writer while it runs: out goes there at sendAt
	sent int64     // compressed bytes given to the client
	eof  bool      // the source is read and the encoder closed
	err  error     // the first error; every later call returns it
	obs  static.Observer
}

var streams = sync.Pool{New: func() any { return new(stream) }}

var (
	_ fasthttp.ReadCloserWithError = (*stream)(nil)
	_ fasthttp.BodyWriterTo        = (*stream)(nil)
)

func newStream(src io.Reader, e policy.Encoding, flush bool) *stream {
	s := streams.Get().(*stream)
	*s = stream{src: src, e: e, flush: flush, out: s.out[:0]}
	s.enc = getEncoder(e, (*sink)(s))
	return s
}

// sink is the stream as the encoder's writer: it gathers output, and
// while WriteTo runs sends it on once there is sendAt of it.
type sink stream

func (k *sink) Write(p []byte) (int, error) {
	s := (*stream)(k)
	s.out = append(s.out, p...)
	if s.to != nil && len(s.out) >= sendAt {
		if err := s.send(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Observe makes the stream tell o, once it is closed, how many compressed
// bytes went to the client (the access log). Call it before the server
// writes the response.
func (s *stream) Observe(o static.Observer) { s.obs = o }

// fill reads once from the source and compresses what came.
func (s *stream) fill() error {
	if s.err != nil {
		return s.err
	}
	buf := readBufs.Get().(*[readSize]byte)
	n, err := s.src.Read(buf[:])
	if n > 0 {
		if _, werr := s.enc.Write(buf[:n]); werr != nil {
			err = werr
		} else if s.flush {
			err = firstErr(err, s.enc.Flush())
		}
	}
	readBufs.Put(buf)
	switch {
	case err == io.EOF:
		s.eof = true
		err = s.enc.Close()
		s.releaseEncoder()
	case err != nil:
		s.err = err
	}
	return err
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// send writes the output gathered to WriteTo's writer.
func (s *stream) send() error {
	if len(s.out) == s.off {
		return nil
	}
	n, err := s.to.Write(s.out[s.off:])
	s.sent += int64(n)
	s.out, s.off = s.out[:0], 0
	if err != nil {
		s.err = err
	}
	return err
}

// Read gives the next compressed bytes. fasthttp's server uses WriteTo.
func (s *stream) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		s.out, s.off = s.out[:0], 0
		if s.eof {
			return 0, io.EOF
		}
		if err := s.fill(); err != nil && err != io.EOF {
			return 0, err
		}
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	s.sent += int64(n)
	return n, nil
}

// SupportsBodyWriteTo tells fasthttp to send the body through WriteTo,
// whose writes become the chunks of the response (each one flushed).
func (s *stream) SupportsBodyWriteTo() bool { return true }

// WriteTo compresses the whole body to w: after every read of the source
// when the stream flushes, else in pieces of sendAt.
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	start := s.sent
	s.to = w
	defer func() { s.to = nil }()
	if err := s.send(); err != nil { // what Read left
		return s.sent - start, err
	}
	for !s.eof {
		if err := s.fill(); err != nil && err != io.EOF {
			return s.sent - start, err
		}
		if s.flush || s.eof {
			if err := s.send(); err != nil {
				return s.sent - start, err
			}
		}
	}
	return s.sent - start, nil
}

func (s *stream) releaseEncoder() {
	if s.enc != nil {
		putEncoder(s.e, s.enc)
		s.enc = nil
	}
}

// CloseWithError closes the source as fasthttp would have closed it (werr
// is why the client side stopped, if it did), gives the encoder back and
// tells the Observer what was sent.
func (s *stream) CloseWithError(werr error) error {
	var err error
	if c, ok := s.src.(io.Closer); ok {
		err = c.Close()
	}
	if c, ok := s.src.(fasthttp.ReadCloserWithError); ok {
		err = firstErr(err, c.CloseWithError(werr))
	}
	s.releaseEncoder()
	if s.obs != nil {
		s.obs.Relayed(s.sent)
	}
	out := s.out
	if cap(out) > 4*sendAt {
		out = nil // an unusually large output burst is not kept
	}
	*s = stream{out: out[:0]}
	streams.Put(s)
	return err
}
