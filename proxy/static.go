package proxy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Static serves the files below a directory, as nginx's root does: the
// file for a request is Root + its normalised path. It answers GET and
// HEAD (405 otherwise), index.html for a directory, 301 to the slashed URL
// for a directory asked without its trailing slash, 404 for a missing
// file and 403 for anything that resolves outside Root (through "..", or a
// symbolic link pointing out) and for a directory without index.html.
// Responses carry Content-Type, Last-Modified and ETag, answer
// If-None-Match and If-Modified-Since with 304 and a single byte Range with
// 206. A file's bytes go from the file to the socket (sendfile on plain
// TCP), never read whole into memory, not for the access log either. No
// session work is done. Safe for concurrent use by multiple goroutines.
type Static struct {
	root     string // absolute, symbolic links resolved
	recorder *Recorder
	// prefix, if not empty, is replaced by replacement in the request
	// path before it is looked up below root (nginx's alias); redirects
	// keep the path the client asked for.
	prefix, replacement string
}

// Alias makes s serve a request for prefix + rest from the file at root +
// replacement + rest, as nginx's alias does for a location: with prefix
// "/img/" and replacement "/", /img/a.png is root/a.png. Call it before
// the first request.
func (s *Static) Alias(prefix, replacement string) {
	s.prefix, s.replacement = prefix, replacement
}

// NewStatic returns a Static for the directory root. rec, if not nil,
// counts and logs its requests.
func NewStatic(root string, rec *Recorder) (*Static, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("static: " + root + " is not a directory")
	}
	return &Static{root: abs, recorder: rec}, nil
}

var (
	errForbidden = &Error{fasthttp.StatusForbidden, "forbidden"}
	errNotFound  = &Error{fasthttp.StatusNotFound, "not found"}
	errMethod    = &Error{fasthttp.StatusMethodNotAllowed, "method not allowed"}
	errRange     = &Error{fasthttp.StatusRequestedRangeNotSatisfiable, "range not satisfiable"}
)

// ServeHTTP answers one request from the files. It is a
// fasthttp.RequestHandler.
func (s *Static) ServeHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	if e := s.serve(ctx); e != nil {
		writeError(ctx, e)
		if e == errMethod {
			ctx.Response.Header.Set("Allow", "GET, HEAD")
		}
	}
	s.recorder.finish(ctx, start)
}

func (s *Static) serve(ctx *fasthttp.RequestCtx) *Error {
	h := &ctx.Request.Header
	if !h.IsGet() && !h.IsHead() {
		return errMethod
	}
	path, err := normalPath(ctx) // no "..", no "//", see normalizePath
	if err != nil {
		if err == errPathClimbs {
			return errClimb
		}
		return errPath
	}
	// A NUL, even percent-encoded and then resolved away by ".." (as in
	// /static/%00/../app.css), is never part of a real file name: such a
	// request is refused, as nginx does, rather than guessed at.
	if bytes.Contains(ctx.Request.Header.RequestURI(), []byte("%00")) ||
		bytes.IndexByte(path, 0) >= 0 || bytes.Contains(path, []byte("/../")) || bytes.HasSuffix(path, []byte("/..")) {
		return errForbidden
	}
	// A file name holds no "/": an escaped one (%2F, left escaped in the
	// normalised path) names no file. A "%" is left escaped as %25.
	if bytes.Contains(path, escapedSlash) {
		return errNotFound
	}
	file := string(path)
	if strings.Contains(file, "%25") {
		file = strings.ReplaceAll(file, "%25", "%")
	}
	if refusedName(file) {
		return errNotFound
	}
	if s.prefix != "" && strings.HasPrefix(file, s.prefix) {
		file = s.replacement + "/" + file[len(s.prefix):] // Join below collapses the "//"
	}
	name, e := s.resolve(filepath.Join(s.root, filepath.FromSlash(file)))
	if e != nil {
		return e
	}
	if refusedName(filepath.ToSlash(strings.TrimPrefix(name, s.root))) {
		return errNotFound // a link to a script or a hidden file
	}
	fi, err := os.Stat(name)
	if err != nil {
		return fileError(err)
	}
	if fi.IsDir() {
		if !bytes.HasSuffix(path, []byte("/")) {
			return s.redirectSlash(ctx, path)
		}
		if name, e = s.resolve(filepath.Join(name, "index.html")); e != nil {
			if e == errNotFound {
				return errForbidden // a directory without an index is not listed
			}
			return e
		}
		if fi, err = os.Stat(name); err != nil || fi.IsDir() {
			return errForbidden
		}
	}
	if !fi.Mode().IsRegular() {
		return errForbidden
	}
	return serveFile(ctx, name, fi)
}

// refusedName reports whether a path below a static root names what is
// never served as a file (CONTRACT.md section 13): a name containing
// ".php" in any case, whose source a PHP site keeps beside its assets,
// and a segment starting with "." (.git, .env, .htpasswd) other than
// .well-known.
func refusedName(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return true
		}
		for i := 0; i+4 <= len(seg); i++ {
			if seg[i] == '.' && seg[i+1]|0x20 == 'p' && seg[i+2]|0x20 == 'h' && seg[i+3]|0x20 == 'p' {
				return true
			}
		}
	}
	return false
}

// resolve follows symbolic links and refuses what lands outside the root.
func (s *Static) resolve(name string) (string, *Error) {
	if !within(name, s.root) {
		return "", errForbidden
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return "", fileError(err)
	}
	if !within(real, s.root) {
		return "", errForbidden
	}
	return real, nil
}

func within(name, root string) bool {
	return name == root || strings.HasPrefix(name, root+string(filepath.Separator))
}

func fileError(err error) *Error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return errNotFound
	}
	return errForbidden
}

func (s *Static) redirectSlash(ctx *fasthttp.RequestCtx, path []byte) *Error {
	loc := appendEscapedPath(nil, path)
	loc = append(loc, '/')
	if q := ctx.URI().QueryString(); len(q) > 0 {
		loc = append(append(loc, '?'), q...)
	}
	ctx.Response.SetStatusCode(fasthttp.StatusMovedPermanently)
	ctx.Response.Header.SetBytesV("Location", loc)
	return nil
}

// serveFile answers with the file's headers and, unless the request is
// HEAD or conditional and fresh, its bytes or the range asked for.
func serveFile(ctx *fasthttp.RequestCtx, name string, fi os.FileInfo) *Error {
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
		resp.SetStatusCode(fasthttp.StatusNotModified)
		resp.Header.Del("Content-Type")
		resp.SkipBody = true
		return nil
	}
	start, length := int64(0), size
	if r := h.Peek("Range"); len(r) > 0 && ifRangeHolds(h, etag, mtime) {
		var ok bool
		if start, length, ok = parseRange(r, size); !ok {
			writeError(ctx, errRange)
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
		resp.Header.SetContentLength(int(length))
		resp.SkipBody = true
		return nil
	}
	f, err := os.Open(name)
	if err != nil {
		return fileError(err)
	}
	if start > 0 {
		if _, err := f.Seek(start, 0); err != nil {
			f.Close()
			return errForbidden
		}
	}
	// fasthttp writes at most length bytes of it and closes it once
	// written; fileBody keeps the sendfile path of a bare *os.File.
	b := fileBodyPool.Get().(*fileBody)
	b.f = f
	resp.SetBodyStream(b, int(length))
	return nil
}

// fileBody is a file's bytes as a response body stream: it counts what
// goes to the client and makes the access-log call when the server
// closes it. WriteTo hands the *os.File itself to the server's writer,
// whose ReadFrom sends it with sendfile as for a bare file: reading it
// through Read would copy every byte through user space.
type fileBody struct {
	f    *os.File
	sent int64      // bytes handed to the client's connection
	log  pendingLog // the access-log line, written on Close
}

var fileBodyPool = sync.Pool{New: func() any { return new(fileBody) }}

// Read reads the next piece of the file.
func (b *fileBody) Read(p []byte) (int, error) {
	n, err := b.f.Read(p)
	b.sent += int64(n)
	return n, err
}

// WriteTo writes the file to w, with sendfile when w and the connection
// below it allow. fasthttp's writer bounds it to the length announced.
func (b *fileBody) WriteTo(w io.Writer) (int64, error) {
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

// Close closes the file and logs the request with what was sent.
func (b *fileBody) Close() error {
	err := b.f.Close()
	b.log.done(b.sent)
	*b = fileBody{}
	fileBodyPool.Put(b)
	return err
}

func (b *fileBody) logWhenRelayed(log func(*fasthttp.RequestCtx, *AccessInfo), ctx *fasthttp.RequestCtx, info *AccessInfo) {
	b.log.set(log, ctx, info)
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
