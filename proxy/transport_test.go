package proxy

import (
	"bufio"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestPlanBody is the buffer-or-stream rule both backend transports
// follow (planBody): plain and pipelined connections read a response
// body the same way.
func TestPlanBody(t *testing.T) {
	for _, tt := range []struct {
		method, head string
		want         bodyPlan
	}{
		{"GET", "200 OK\r\nContent-Length: 10", bufferBody},
		{"GET", "200 OK\r\nContent-Length: 0", bufferBody},
		{"GET", "200 OK\r\nContent-Length: " + strconv.Itoa(MaxBufferedBody), bufferBody},
		{"GET", "200 OK\r\nContent-Length: " + strconv.Itoa(MaxBufferedBody+1), streamBody},
		{"GET", "200 OK\r\nTransfer-Encoding: chunked", streamBody},
		{"GET", "200 OK\r\nConnection: close", streamBody}, // until close
		{"GET", "200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 10", streamBody},
		{"GET", "200 OK\r\nContent-Type: Text/Event-Stream; charset=utf-8\r\nContent-Length: 10", streamBody},
		{"HEAD", "200 OK\r\nContent-Length: 1000000", skipBody},
		{"GET", "204 No Content\r\nContent-Length: 10", skipBody},
		{"GET", "304 Not Modified\r\nTransfer-Encoding: chunked", skipBody},
	} {
		var req fasthttp.RequestHeader
		req.SetMethod(tt.method)
		var resp fasthttp.ResponseHeader
		if err := resp.Read(bufio.NewReader(strings.NewReader("HTTP/1.1 " + tt.head + "\r\n\r\n"))); err != nil {
			t.Fatalf("%q: %v", tt.head, err)
		}
		if got := planBody(&req, &resp); got != tt.want {
			t.Errorf("%s, %q: plan %d, want %d", tt.method, tt.head, got, tt.want)
		}
	}
}
