package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"
)

// Framing errors. Each ends the connection after an error response.
var (
	errHeaderTooLarge = errors.New("gnetproxy: request header too large")
	errBodyTooLarge   = errors.New("gnetproxy: request body too large")
	errChunked        = errors.New("gnetproxy: chunked request bodies are not supported")
)

// parser reads requests out of a connection's inbound bytes with
// fasthttp's header parser. The event loop hands it whatever has arrived,
// which may be part of a request or several pipelined ones; it frames one
// request (the header block up to its blank line, then Content-Length
// bytes of body) and leaves the rest for the next call. One parser serves
// one goroutine at a time.
type parser struct {
	// MaxHeader bounds the header block, request line included (nginx's
	// large_client_header_buffers default is 8 KiB per line).
	MaxHeader int
	// MaxBody bounds a request body.
	MaxBody int

	src bytes.Reader
	br  *bufio.Reader
}

func newParser(maxHeader, maxBody int) *parser {
	// The bufio.Reader must hold a whole header block: fasthttp's reader
	// peeks it at once.
	return &parser{MaxHeader: maxHeader, MaxBody: maxBody, br: bufio.NewReaderSize(nil, maxHeader+16)}
}

// next parses the first request in buf into req. It returns the bytes the
// request took; 0 and a nil error mean the request is not complete yet.
// On an error the connection cannot be framed any further.
func (p *parser) next(buf []byte, req *fasthttp.Request) (int, error) {
	end := headerEnd(buf)
	if end < 0 {
		if len(buf) > p.MaxHeader {
			return 0, errHeaderTooLarge
		}
		return 0, nil
	}
	if end > p.MaxHeader {
		return 0, errHeaderTooLarge
	}
	req.Reset()
	p.src.Reset(buf[:end])
	p.br.Reset(&p.src)
	if err := req.Header.Read(p.br); err != nil {
		return 0, fmt.Errorf("gnetproxy: bad request header: %w", err)
	}
	n := req.Header.ContentLength()
	switch {
	case n == -1:
		return 0, errChunked
	case n < 0: // no Content-Length: no body
		return end, nil
	case n > p.MaxBody:
		return 0, errBodyTooLarge
	case len(buf)-end < n:
		return 0, nil
	}
	req.SetBody(buf[end : end+n])
	return end + n, nil
}

// headerEnd returns the offset just past the CRLF CRLF that ends the
// first header block in buf, or -1 if it has not arrived. As fasthttp's
// reader does, it skips empty lines (LF or CRLF) before the request line
// and takes nothing but CRLF CRLF for the end of the block.
func headerEnd(buf []byte) int {
	start := 0
	for start < len(buf) {
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 || (i > 0 && !(i == 1 && buf[start] == '\r')) {
			break // the request line, complete or not
		}
		start += i + 1
	}
	i := bytes.Index(buf[start:], crlfcrlf)
	if i < 0 {
		return -1
	}
	return start + i + len(crlfcrlf)
}

var crlfcrlf = []byte("\r\n\r\n")
