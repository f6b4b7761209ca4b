package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http/httputil"
	"testing"
)

// decodeChunked runs the relay's chunked decoder over a whole body.
func decodeChunked(src []byte) ([]byte, error) {
	br := bufio.NewReaderSize(bytes.NewReader(src), 16)
	var out []byte
	inChunk := false
	for {
		if inChunk {
			if err := readCRLF(br); err != nil {
				return out, err
			}
		}
		size, err := readChunkSize(br)
		if err != nil {
			return out, err
		}
		if size == 0 {
			return out, skipTrailer(br)
		}
		if size > int64(len(src)) {
			return out, io.ErrUnexpectedEOF
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return out, io.ErrUnexpectedEOF
		}
		out = append(out, buf...)
		inChunk = true
	}
}

// The relay decodes what a backend framed chunked: whatever it accepts,
// Go's own chunked reader decodes to the same bytes, and a body chunked
// any way decodes to itself.
func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), []byte("abc"))
	f.Add([]byte("5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"), []byte(""))
	f.Add([]byte("a\nxxxxxxxxxx\n0\n\n"), []byte("split me"))
	f.Add([]byte("fffffffffffffffff\r\n"), []byte("x"))
	f.Add([]byte("-1\r\n"), []byte("yy"))
	f.Add([]byte("5 \r\nhello\r\n0\r\n\r\n"), []byte("z"))
	f.Fuzz(func(t *testing.T, wire, body []byte) {
		got, err := decodeChunked(wire)
		if err == nil {
			want, werr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(wire)))
			if werr == nil && !bytes.Equal(got, want) {
				t.Fatalf("%q decoded to %q, Go's reader gives %q", wire, got, want)
			}
		}
		var enc bytes.Buffer
		for rest := body; len(rest) > 0; {
			n := 1 + int(rest[0])%7
			n = min(n, len(rest))
			fmt.Fprintf(&enc, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		enc.WriteString("0\r\n\r\n")
		if got, err := decodeChunked(enc.Bytes()); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%q chunked as %q decoded to %q, %v", body, enc.Bytes(), got, err)
		}
	})
}
