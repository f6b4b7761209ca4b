// Package fastcgi is a FastCGI 1.0 client for the responder role, the one
// PHP-FPM plays: it writes a request's records (BEGIN_REQUEST, PARAMS,
// STDIN) and reads the answer's (STDOUT, STDERR, END_REQUEST), and parses
// the CGI headers at the head of STDOUT.
//
// It works on a caller's buffered connection and allocates nothing per
// request: a proxy pools connections itself. One request runs on a
// connection at a time (PHP-FPM does not multiplex), always with request
// ID 1. Every record is read through the caller's bufio.Reader, so memory
// stays bounded by its size whatever a backend sends.
package fastcgi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// Record types (FastCGI 1.0 section 8).
const (
	typeBeginRequest = 1
	typeEndRequest   = 3
	typeParams       = 4
	typeStdin        = 5
	typeStdout       = 6
	typeStderr       = 7
)

const (
	version       = 1
	roleResponder = 1
	flagKeepConn  = 1
	// requestID is the only request ID used: one request per connection
	// at a time.
	requestID = 1
	// maxContent is the most content one record holds (a 16-bit length).
	maxContent = 65535
	headerLen  = 8
)

// ErrProtocol is a record this client cannot accept: another version,
// request ID or type than the answer to its request may hold, or an
// END_REQUEST of the wrong size.
var ErrProtocol = errors.New("fastcgi: malformed record from the application")

// padding is the record padding that keeps each record a multiple of 8
// bytes long, as nginx and PHP-FPM write them.
func padding(n int) int { return -n & 7 }

var zeros [8]byte

// writeRecord writes one record of type typ holding content, padded.
func writeRecord(w *bufio.Writer, typ byte, content []byte) error {
	pad := padding(len(content))
	h := [headerLen]byte{version, typ, 0, requestID, byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
	w.Write(h[:])
	w.Write(content)
	_, err := w.Write(zeros[:pad])
	return err
}

// WriteBegin writes BEGIN_REQUEST for the responder role. keepConn asks
// the application to leave the connection open after its END_REQUEST, so
// that it can carry the next request.
func WriteBegin(w *bufio.Writer, keepConn bool) error {
	body := [8]byte{0, roleResponder}
	if keepConn {
		body[2] = flagKeepConn
	}
	return writeRecord(w, typeBeginRequest, body[:])
}

// AppendParam appends one name-value pair in FastCGI's encoding: each
// length in one byte below 128, else in four with the high bit set.
func AppendParam(dst []byte, name, value string) []byte {
	dst = appendLen(dst, len(name))
	dst = appendLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

// AppendParamBytes is AppendParam for byte slices.
func AppendParamBytes(dst, name, value []byte) []byte {
	dst = appendLen(dst, len(name))
	dst = appendLen(dst, len(value))
	dst = append(dst, name...)
	return append(dst, value...)
}

func appendLen(dst []byte, n int) []byte {
	if n < 128 {
		return append(dst, byte(n))
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)|1<<31)
}

// WriteParams writes params, pairs made with AppendParam, as PARAMS
// records, and the empty one that ends the stream.
func WriteParams(w *bufio.Writer, params []byte) error {
	if err := writeStream(w, typeParams, params); err != nil {
		return err
	}
	return writeRecord(w, typeParams, nil)
}

// writeStream writes b as records of type typ, none of them empty.
func writeStream(w *bufio.Writer, typ byte, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), maxContent)
		if err := writeRecord(w, typ, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// Stdin writes the request body as STDIN records, one per Write (split
// at 64 KiB). Close writes the empty record that ends the body; a request
// without a body still needs it.
type Stdin struct{ W *bufio.Writer }

// Write writes b as STDIN records.
func (s Stdin) Write(b []byte) (int, error) {
	if err := writeStream(s.W, typeStdin, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close ends the body. It does not flush.
func (s Stdin) Close() error { return writeRecord(s.W, typeStdin, nil) }

// Reader reads the answer to one request. Read returns the STDOUT
// stream's bytes and io.EOF once END_REQUEST has arrived; STDERR records
// go to Stderr, never into the stream. Its zero value is not usable: call
// Reset.
type Reader struct {
	br *bufio.Reader
	// Stderr gets what the application writes to STDERR, a piece at a
	// time (a record may come in several pieces); nil discards it.
	Stderr func([]byte)

	left  int  // content bytes of the current STDOUT record not yet read
	pad   int  // its padding, skipped once left is 0
	ended bool // END_REQUEST has been read

	// AppStatus and ProtocolStatus are END_REQUEST's, once Ended.
	AppStatus      uint32
	ProtocolStatus byte
}

// Reset makes r read a new answer from br.
func (r *Reader) Reset(br *bufio.Reader, stderr func([]byte)) {
	*r = Reader{br: br, Stderr: stderr}
}

// Ended reports whether END_REQUEST has been read: the connection then
// holds nothing more of this answer and may carry another request.
func (r *Reader) Ended() bool { return r.ended }

// Read reads STDOUT bytes into p.
func (r *Reader) Read(p []byte) (int, error) {
	for r.left == 0 {
		if r.ended {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.left -= n
	if r.left == 0 && err == nil {
		err = r.skip(r.pad)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// next reads record headers until one starts STDOUT content or ends the
// request, passing STDERR content to Stderr on the way.
func (r *Reader) next() error {
	h, err := r.br.Peek(headerLen)
	if err != nil {
		return unexpected(err)
	}
	typ, id := h[1], binary.BigEndian.Uint16(h[2:])
	n, pad := int(binary.BigEndian.Uint16(h[4:])), int(h[6])
	if h[0] != version || id != requestID {
		return ErrProtocol
	}
	r.br.Discard(headerLen)
	switch typ {
	case typeStdout:
		r.left, r.pad = n, pad
		if n == 0 {
			return r.skip(pad) // the end of the stream; END_REQUEST follows
		}
		return nil
	case typeStderr:
		if err := r.stderr(n); err != nil {
			return err
		}
		return r.skip(pad)
	case typeEndRequest:
		if n != 8 {
			return ErrProtocol
		}
		b, err := r.br.Peek(8)
		if err != nil {
			return unexpected(err)
		}
		r.AppStatus, r.ProtocolStatus = binary.BigEndian.Uint32(b), b[4]
		r.br.Discard(8)
		if err := r.skip(pad); err != nil {
			return err
		}
		r.ended = true
		return nil
	}
	return ErrProtocol
}

// stderr passes n bytes of STDERR content to Stderr through the reader's
// own buffer.
func (r *Reader) stderr(n int) error {
	for n > 0 {
		b, err := r.br.Peek(min(n, r.br.Size()))
		if len(b) == 0 {
			return unexpected(err)
		}
		if r.Stderr != nil {
			r.Stderr(b)
		}
		r.br.Discard(len(b))
		n -= len(b)
	}
	return nil
}

func (r *Reader) skip(n int) error {
	if _, err := r.br.Discard(n); err != nil {
		return unexpected(err)
	}
	return nil
}

// unexpected is err, with an end of input in the middle of an answer
// made io.ErrUnexpectedEOF: the application died mid-record.
func unexpected(err error) error {
	if err == io.EOF || err == bufio.ErrBufferFull {
		return io.ErrUnexpectedEOF
	}
	return err
}
