package static

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// serveFile answers with the file's headers and, unless the request is
// HEAD or conditional and fresh, its bytes or the range asked for. It
// owns f: closed here or by the response's body stream.
func serveFile(ctx *fasthttp.RequestCtx, f *os.File, name string, fi os.FileInfo) *problem {
	resp := &ctx.Response
	h := &ctx.Request.Header
	size, mtime := fi.Size(), fi.ModTime()
	etag := `"` + strconv.FormatInt(mtime.Unix(), 16) + "-" + strconv.FormatInt(size, 16) + `"` // nginx's form
	ctype := mime.TypeByExtension(filepath.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	resp.Header.SetContentType(ctype)
	resp.Header.Set("Last-Modified", mtime.UTC().Format(http.TimeFormat))
	resp.Header.Set("ETag", etag)
	resp.Header.Set("Accept-Ranges", "bytes")
	if notModified(h, etag, mtime) {
		f.Close()
		resp.SetStatusCode(fasthttp.StatusNotModified)
		resp.Header.Del("Content-Type")
		resp.SkipBody = true
		return nil
	}
	start, length := int64(0), size
	if r := h.Peek("Range"); len(r) > 0 && ifRangeHolds(h, etag, mtime) {
		var ok bool
		if start, length, ok = parseRange(r, size); !ok {
			f.Close()
			errRange.write(ctx)
			resp.Header.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			return nil
		}
		if length != size {
			resp.SetStatusCode(fasthttp.StatusPartialContent)
			resp.Header.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+
				strconv.FormatInt(start+length-1, 10)+"/"+strconv.FormatInt(size, 10))
		}
	}
	if h.IsHead() {
		f.Close()
		resp.Header.SetContentLength(int(length))
		resp.SkipBody = true
		return nil
	}
	if start > 0 {
		if _, err := f.Seek(start, 0); err != nil {
			f.Close()
			return errForbidden
		}
	}
	// fasthttp writes at most length bytes of it and closes it once
	// written; Body keeps the sendfile path of a bare *os.File.
	b := bodyPool.Get().(*Body)
	b.f = f
	resp.SetBodyStream(b, int(length))
	return nil
}

// Body is a file's bytes as a response body stream: it counts what goes
// to the client and tells its Observer when the server closes it. WriteTo
// hands the *os.File itself to the server's writer, whose ReadFrom sends
// it with sendfile as for a bare file: reading it through Read would copy
// every byte through user space. Bodies are pooled: one is not used after
// Close.
type Body struct {
	f    *os.File
	sent int64    // bytes handed to the client's connection
	obs  Observer // told on Close; nil: no one

	skipClose bool // the next Close does nothing (SkipNextClose)
}

// An Observer learns how many bytes of a file went to the client, once
// the server is done with its body (an access log).
type Observer interface {
	Relayed(sent int64)
}

var bodyPool = sync.Pool{New: func() any { return new(Body) }}

// Observe makes Close tell o what was sent. Call it before the server
// writes the response.
func (b *Body) Observe(o Observer) { b.obs = o }

// Read reads the next piece of the file.
func (b *Body) Read(p []byte) (int, error) {
	n, err := b.f.Read(p)
	b.sent += int64(n)
	return n, err
}

// WriteTo writes the file to w, with sendfile when w and the connection
// below it allow. fasthttp's writer bounds it to the length announced.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(b.f)
	} else {
		n, err = io.Copy(w, struct{ io.Reader }{b.f}) // Read only: no loop back into WriteTo
	}
	b.sent += n
	return n, err
}

// SkipNextClose makes the next Close do nothing: the body is being moved
// into another stream (package compress), which closes it instead, and
// fasthttp closes the stream a response holds when it is given another.
func (b *Body) SkipNextClose() { b.skipClose = true }

// Close closes the file and tells the Observer what was sent.
func (b *Body) Close() error {
	if b.skipClose {
		b.skipClose = false
		return nil
	}
	err := b.f.Close()
	if b.obs != nil {
		b.obs.Relayed(b.sent)
	}
	*b = Body{}
	bodyPool.Put(b)
	return err
}

// notModified applies If-None-Match, else If-Modified-Since (RFC 9110 13.2.2).
func notModified(h *fasthttp.RequestHeader, etag string, mtime time.Time) bool {
	if inm := h.Peek("If-None-Match"); len(inm) > 0 {
		return etagListHas(inm, etag)
	}
	if ims := h.Peek("If-Modified-Since"); len(ims) > 0 {
		t, err := http.ParseTime(string(ims))
		return err == nil && !mtime.Truncate(time.Second).After(t)
	}
	return false
}

func etagListHas(list []byte, etag string) bool {
	for _, tag := range bytes.Split(list, []byte(",")) {
		tag = bytes.TrimSpace(tag)
		tag = bytes.TrimPrefix(tag, []byte("W/")) // weak comparison, as for If-None-Match
		if string(tag) == etag || string(tag) == "*" {
			return true
		}
	}
	return false
}

// ifRangeHolds reports whether a Range may be served: without If-Range, or
// when it names the current ETag or Last-Modified.
func ifRangeHolds(h *fasthttp.RequestHeader, etag string, mtime time.Time) bool {
	ir := h.Peek("If-Range")
	if len(ir) == 0 {
		return true
	}
	if ir[0] == '"' {
		return string(ir) == etag
	}
	t, err := http.ParseTime(string(ir))
	return err == nil && mtime.Truncate(time.Second).Equal(t)
}

// parseRange reads a single "bytes=" range. A list of ranges is served as
// the whole file (ok with length == size), as a multipart answer is rarely
// wanted; an unsatisfiable range is !ok.
func parseRange(r []byte, size int64) (start, length int64, ok bool) {
	spec, found := bytes.CutPrefix(r, []byte("bytes="))
	if !found || bytes.IndexByte(spec, ',') >= 0 {
		return 0, size, true
	}
	first, last, found := bytes.Cut(bytes.TrimSpace(spec), []byte("-"))
	if !found {
		return 0, size, true
	}
	if len(first) == 0 { // suffix: the last N bytes
		n, err := strconv.ParseInt(string(last), 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, size > 0
	}
	s, err := strconv.ParseInt(string(first), 10, 64)
	if err != nil || s < 0 || s >= size {
		return 0, 0, false
	}
	e := size - 1
	if len(last) > 0 {
		if e, err = strconv.ParseInt(string(last), 10, 64); err != nil || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true
}
