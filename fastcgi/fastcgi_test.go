package fastcgi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"sort"
	"strings"
	"testing"

	"sessionproxy/internal/rawtcp"
)

// startApp runs h under Go's FastCGI server (net/http/fcgi) on a free
// 127.0.0.1 port and returns its address.
func startApp(t *testing.T, h http.Handler) string {
	t.Helper()
	ln := rawtcp.Listen(t)
	go fcgi.Serve(ln, h)
	return ln.Addr().String()
}

// answer is what roundTrip read back.
type answer struct {
	status  int
	headers []string // "Name: value"
	body    []byte
	stderr  string
}

// roundTrip sends one request on c (buffered by br and bw) and reads the
// whole answer.
func roundTrip(t *testing.T, br *bufio.Reader, bw *bufio.Writer, params map[string]string, body io.Reader, keep bool) (answer, *Reader, error) {
	t.Helper()
	var p []byte
	for k, v := range params {
		p = AppendParam(p, k, v)
	}
	if err := WriteBegin(bw, keep); err != nil {
		return answer{}, nil, err
	}
	if err := WriteParams(bw, p); err != nil {
		return answer{}, nil, err
	}
	if body != nil {
		if _, err := io.Copy(Stdin{bw}, body); err != nil {
			return answer{}, nil, err
		}
	}
	Stdin{bw}.Close()
	if err := bw.Flush(); err != nil {
		return answer{}, nil, err
	}
	var a answer
	r := new(Reader)
	r.Reset(br, func(b []byte) { a.stderr += string(b) })
	hr := bufio.NewReaderSize(r, 4096)
	var err error
	a.status, err = ReadHeader(hr, func(name, value []byte) { a.headers = append(a.headers, string(name)+": "+string(value)) })
	if err != nil {
		return a, r, err
	}
	a.body, err = io.ReadAll(hr)
	return a, r, err
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader, *bufio.Writer) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReaderSize(c, 4096), bufio.NewWriter(c)
}

// Params of every size reach the application intact (1- and 4-byte
// lengths), the body arrives whole, and Status and other headers come
// back; several requests share one connection (KEEP_CONN).
func TestAgainstNetHTTPFCGI(t *testing.T) {
	addr := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := fcgi.ProcessEnv(r)
		var keys []string
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Session-Set-user", "ann")
		w.WriteHeader(201)
		fmt.Fprintf(w, "%s %s body=%d %x long=%d\n", r.Method, r.URL.RequestURI(), n, h.Sum(nil), len(r.Header.Get("X-Long")))
	}))
	_, br, bw := dial(t, addr)
	long := strings.Repeat("v", 70000)
	for i, size := range []int{0, 1, 127, 128, 65535, 65536, 3 << 20} {
		body := bytes.Repeat([]byte{byte(i)}, size)
		params := map[string]string{
			"REQUEST_METHOD": "POST", "REQUEST_URI": "/x.php?a=1", "SCRIPT_NAME": "/x.php",
			"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "example.com", "CONTENT_LENGTH": fmt.Sprint(size),
			"HTTP_X_LONG": long, strings.Repeat("N", 200): "x",
		}
		a, r, err := roundTrip(t, br, bw, params, bytes.NewReader(body), true)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		want := fmt.Sprintf("POST /x.php?a=1 body=%d %x long=70000\n", size, sha256.Sum256(body))
		if a.status != 201 || string(a.body) != want || !r.Ended() {
			t.Fatalf("size %d: %d %q ended=%v, want 201 %q", size, a.status, a.body, r.Ended(), want)
		}
		if !contains(a.headers, "X-Session-Set-User: ann") {
			t.Fatalf("headers %q", a.headers)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A large answer streams through a small buffer.
func TestLargeStdout(t *testing.T) {
	const size = 8 << 20
	addr := startApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(zeroReader{}, size))
	}))
	_, br, bw := dial(t, addr)
	a, _, err := roundTrip(t, br, bw, map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1"}, nil, false)
	if err != nil || a.status != 200 || len(a.body) != size || !contains(a.headers, "Content-Type: application/octet-stream") {
		t.Fatalf("%v %d %d %q", err, a.status, len(a.body), a.headers)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// rawApp answers every connection with the bytes of answer, then closes.
func rawApp(t *testing.T, answer []byte) string {
	t.Helper()
	return rawtcp.Serve(t, func(c net.Conn) {
		// Read the request up to the empty STDIN record.
		br := bufio.NewReader(c)
		for {
			h := make([]byte, 8)
			if _, err := io.ReadFull(br, h); err != nil {
				return
			}
			n := int(h[4])<<8 | int(h[5]) + int(h[6])
			br.Discard(n)
			if h[1] == typeStdin && h[4] == 0 && h[5] == 0 {
				break
			}
		}
		c.Write(answer)
	}).Addr
}

// record builds one record as an application writes it.
func record(typ byte, id uint16, content []byte, pad int) []byte {
	b := []byte{version, typ, byte(id >> 8), byte(id), byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
	b = append(b, content...)
	return append(b, make([]byte, pad)...)
}

func endRequest(app uint32, proto byte) []byte {
	return record(typeEndRequest, 1, []byte{byte(app >> 24), byte(app >> 16), byte(app >> 8), byte(app), proto, 0, 0, 0}, 0)
}

// STDERR records between and inside the STDOUT stream are logged, never
// part of the body; odd paddings are skipped.
func TestStderrAndPadding(t *testing.T) {
	var ans []byte
	ans = append(ans, record(typeStderr, 1, []byte("PHP Warning: x"), 2)...)
	ans = append(ans, record(typeStdout, 1, []byte("Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nno"), 255)...)
	ans = append(ans, record(typeStderr, 1, []byte(" and y"), 0)...)
	ans = append(ans, record(typeStdout, 1, []byte("pe"), 7)...)
	ans = append(ans, record(typeStdout, 1, nil, 0)...)
	ans = append(ans, endRequest(0, 0)...)
	_, br, bw := dial(t, rawApp(t, ans))
	a, r, err := roundTrip(t, br, bw, nil, nil, false)
	if err != nil || a.status != 404 || string(a.body) != "nope" || a.stderr != "PHP Warning: x and y" || !r.Ended() {
		t.Fatalf("%v %d %q stderr %q", err, a.status, a.body, a.stderr)
	}
	if !contains(a.headers, "Content-type: text/html") || len(a.headers) != 1 {
		t.Fatalf("headers %q", a.headers)
	}
}

// An application that dies in the middle of a record, or sends records
// this client cannot take, gives an error, not a short body passed as
// whole.
func TestBrokenAnswers(t *testing.T) {
	head := record(typeStdout, 1, []byte("Content-Type: text/plain\r\n\r\nbody"), 0)
	for name, ans := range map[string][]byte{
		"dies mid-content": append(append([]byte{}, head...), record(typeStdout, 1, []byte("more body"), 0)[:12]...),
		"dies mid-header":  append(append([]byte{}, head...), 1, 6, 0),
		"dies mid-padding": append(append([]byte{}, head...), record(typeStdout, 1, []byte("x"), 7)[:10]...),
		"no END_REQUEST":   append(append([]byte{}, head...), record(typeStdout, 1, nil, 0)...),
		"other request id": append(append([]byte{}, head...), record(typeStdout, 2, []byte("x"), 0)...),
		"version 2":        append(append([]byte{}, head...), 2, typeStdout, 0, 1, 0, 0, 0, 0),
		"unknown type":     append(append([]byte{}, head...), record(11, 1, []byte("x"), 0)...),
		"short END":        append(append([]byte{}, head...), record(typeEndRequest, 1, []byte{0, 0}, 0)...),
	} {
		_, br, bw := dial(t, rawApp(t, ans))
		a, _, err := roundTrip(t, br, bw, nil, nil, false)
		if err == nil {
			t.Errorf("%s: no error, body %q", name, a.body)
		}
	}
}

// CGI heads: Location alone is 302, a bad Status or a line without a
// colon is an error.
func TestReadHeader(t *testing.T) {
	for in, want := range map[string]int{
		"Content-Type: text/html\r\n\r\n":                   200,
		"Location: /login\n\n":                              302,
		"Status: 301 Moved\r\nLocation: /x\r\n\r\n":         301,
		"Status: 404\r\n\r\n":                               404,
		"status:503 Service Unavailable\r\nX-A: b\r\n\r\n":  503,
		"Status: 1000\r\n\r\n":                              0,
		"Status: 100 Continue\r\n\r\n":                      0,
		"Status: abc\r\n\r\n":                               0,
		"no colon\r\n\r\n":                                  0,
		"X-A: b\r\n folded\r\n\r\n":                         0,
		"\r\n":                                              0,
		"X-A: b\r\n":                                        0,
		"Bad Name: b\r\n\r\n":                               0,
		"X-Long: " + strings.Repeat("a", 5000) + "\r\n\r\n": 0,
		strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 200) + "\r\n": 0,
		strings.Repeat("X-Some: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 100) + "\r\n": 200,
	} {
		got, err := ReadHeader(bufio.NewReaderSize(strings.NewReader(in), 4096), func(_, _ []byte) {})
		if (err != nil) != (want == 0) || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
}
