package fastcgi

import (
	"bufio"
	"bytes"
	"errors"
)

// ErrHeader is a CGI response head that cannot be read: a line without a
// colon, a folded line, a bad Status, or a head longer than the buffer.
var ErrHeader = errors.New("fastcgi: malformed CGI response header")

// ReadHeader reads the CGI header lines at the head of a script's output
// (RFC 3875 section 6) up to the empty line, calling fn with each header
// but Status, and returns the status: Status's code, else 302 when the
// script set Location, else 200. The whole head must be no longer than
// br's buffer, so that a script cannot make the caller hold an unbounded
// header.
func ReadHeader(br *bufio.Reader, fn func(name, value []byte)) (status int, err error) {
	location := false
	left := br.Size()
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return 0, ErrHeader
			}
			return 0, unexpected(err)
		}
		if left -= len(line); left < 0 {
			return 0, ErrHeader
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		if len(line) == 0 {
			if first {
				return 0, ErrHeader // no header at all: CGI needs Content-Type or Status
			}
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || bytes.ContainsAny(line[:colon], " \t") {
			return 0, ErrHeader
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case equalFold(name, "Status"):
			if status, err = parseStatus(value); err != nil {
				return 0, err
			}
			continue
		case equalFold(name, "Location"):
			location = true
		}
		fn(name, value)
	}
	switch {
	case status != 0:
		return status, nil
	case location:
		return 302, nil
	}
	return 200, nil
}

// parseStatus reads "404" or "404 Not Found".
func parseStatus(v []byte) (int, error) {
	if len(v) < 3 || (len(v) > 3 && v[3] != ' ') {
		return 0, ErrHeader
	}
	code := 0
	for _, c := range v[:3] {
		if c < '0' || c > '9' {
			return 0, ErrHeader
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 {
		return 0, ErrHeader // a script cannot answer 1xx
	}
	return code, nil
}

// equalFold reports whether b is s in any case (s is ASCII).
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}
