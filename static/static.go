// Package static serves the files below a directory, as nginx's root
// does, through an os.Root: nothing outside the directory is ever opened,
// whatever symbolic link is swapped in while a request is served.
package static

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/valyala/fasthttp"

	"sessionproxy/internal/urlpath"
)

// Files serves the files below a directory: the file for a request is the
// directory + its normalised path. It answers GET and HEAD (405
// otherwise), index.html for a directory, 301 to the slashed URL for a
// directory asked without its trailing slash, 404 for a missing file and
// 403 for anything that resolves outside the directory (through "..", or
// a symbolic link pointing out) and for a directory without index.html.
// Responses carry Content-Type, Last-Modified and ETag, answer
// If-None-Match and If-Modified-Since with 304 and a single byte Range with
// 206. A file's bytes go from the file to the socket (sendfile on plain
// TCP), never read whole into memory. Safe for concurrent use by multiple
// goroutines.
//
// Every file is opened through an os.Root, which refuses any name whose
// resolution leaves the directory. Files follows symbolic links itself
// first (through the same Root) for two reasons: an absolute link that
// points inside the directory is served, as before os.Root (which refuses
// every absolute link), and the name the links lead to is checked against
// the names never served (section 13 of the contract: a link named
// app.txt to app.php is refused).
type Files struct {
	root *os.Root
	// dirs are the directory as given (made absolute) and with its
	// symbolic links resolved: an absolute link whose target is below
	// either is followed inside the root.
	dirs [2]string
	// prefix, if not empty, is replaced by replacement in the request
	// path before it is looked up (nginx's alias); redirects keep the
	// path the client asked for.
	prefix, replacement string
}

// New returns a Files for the directory dir. The directory stays open
// (one file descriptor) until Close, or until the Files is garbage.
func New(dir string) (*Files, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("static: " + dir + " is not a directory")
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return nil, err
	}
	return &Files{root: root, dirs: [2]string{abs, real}}, nil
}

// Alias makes f serve a request for prefix + rest from the file at the
// directory + replacement + rest, as nginx's alias does for a location:
// with prefix "/img/" and replacement "/", /img/a.png is dir/a.png. Call it
// before the first request.
func (f *Files) Alias(prefix, replacement string) {
	f.prefix, f.replacement = prefix, replacement
}

// Close closes the directory. Bodies being sent go on: each holds its
// own file.
func (f *Files) Close() error { return f.root.Close() }

// problem is one of the answers Files gives itself: a status and the
// one-line reason that becomes the plain-text body, in the same form as
// the proxy's own errors.
type problem struct {
	status int
	reason string
}

var (
	errForbidden = &problem{fasthttp.StatusForbidden, "forbidden"}
	errNotFound  = &problem{fasthttp.StatusNotFound, "not found"}
	errMethod    = &problem{fasthttp.StatusMethodNotAllowed, "method not allowed"}
	errRange     = &problem{fasthttp.StatusRequestedRangeNotSatisfiable, "range not satisfiable"}
)

func (p *problem) write(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(p.status)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.SetBodyString(p.reason + "\n")
}

// Serve answers the request in ctx from the files. path is its
// normalised path: %-escapes decoded except %2F and %25, ".", ".." and
// "//" resolved. It does no session work and sets no X-Request-Id.
func (f *Files) Serve(ctx *fasthttp.RequestCtx, path []byte) {
	if p := f.serve(ctx, path); p != nil {
		p.write(ctx)
		if p == errMethod {
			ctx.Response.Header.Set("Allow", "GET, HEAD")
		}
	}
}

func (f *Files) serve(ctx *fasthttp.RequestCtx, path []byte) *problem {
	h := &ctx.Request.Header
	if !h.IsGet() && !h.IsHead() {
		return errMethod
	}
	// A NUL, even percent-encoded and then resolved away by ".." (as in
	// /static/%00/../app.css), is never part of a real file name: such a
	// request is refused, as nginx does, rather than guessed at.
	if bytes.Contains(h.RequestURI(), []byte("%00")) ||
		bytes.IndexByte(path, 0) >= 0 || bytes.Contains(path, []byte("/../")) || bytes.HasSuffix(path, []byte("/..")) {
		return errForbidden
	}
	_, name, fi, p := f.find(path)
	if p != nil {
		return p
	}
	if fi.IsDir() {
		if !bytes.HasSuffix(path, []byte("/")) {
			return redirectSlash(ctx, path)
		}
		if name, fi, p = f.resolve(name + "/index.html"); p != nil {
			if p == errNotFound {
				return errForbidden // a directory without an index is not listed
			}
			return p
		}
		if fi.IsDir() {
			return errForbidden
		}
	} else if bytes.HasSuffix(path, []byte("/")) {
		// "data.json/" names no file (ENOTDIR: nginx's 404). Served,
		// the file would get past a route that matches its name only
		// without the slash (location ~ \.json$ { deny all; }).
		return errNotFound
	}
	if !fi.Mode().IsRegular() {
		return errForbidden
	}
	if testHookResolved != nil {
		testHookResolved()
	}
	fh, err := f.root.OpenFile(name, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return fileError(err)
	}
	// The file opened is the one described: a FIFO or directory swapped
	// in since resolve is refused (the non-blocking open did not wait on
	// a FIFO), and the ETag and length are those of the bytes sent.
	if fi, err = fh.Stat(); err != nil || !fi.Mode().IsRegular() {
		fh.Close()
		return errForbidden
	}
	return serveFile(ctx, fh, name, fi)
}

// testHookResolved, if not nil, runs between resolve and the open: a
// test swaps a link there.
var testHookResolved func()

// maxLinks bounds the symbolic links one name may go through, as Linux's
// MAXSYMLINKS does.
const maxLinks = 40

// resolve follows the symbolic links in name, a slash-separated path
// below the root, and returns the name, relative to the root, that it
// leads to, with what Lstat says of it. A link or ".." that leads out of
// the root is 403; a name the links lead to that is never served
// (RefusedName) is 404. Every lookup goes through the Root, so a link

// find maps a normalised request path to what it names below the
// directory, for Serve and Exists alike: a file name holds no "/", so an
// escaped one (%2F, left escaped in the normalised path) names no file; a
// "%" is left escaped as %25; names never served are not found; an alias
// prefix is replaced; then resolve, which never leaves the root.
func (f *Files) find(path []byte) (file, name string, fi fs.FileInfo, p *problem) {
	if bytes.Contains(path, []byte("%2F")) {
		return "", "", nil, errNotFound
	}
	file = string(path)
	if strings.Contains(file, "%25") {
		file = strings.ReplaceAll(file, "%25", "%")
	}
	if RefusedName(file) {
		return "", "", nil, errNotFound
	}
	if f.prefix != "" && strings.HasPrefix(file, f.prefix) {
		file = f.replacement + "/" + file[len(f.prefix):]
	}
	name, fi, p = f.resolve(filepath.ToSlash(file))
	return file, name, fi, p
}

// swapped in meanwhile can make the answer wrong, never reach outside.
func (f *Files) resolve(name string) (string, fs.FileInfo, *problem) {
	done, rest := "", name // done: resolved, no links; rest: still to walk
	var fi fs.FileInfo
	for links := 0; ; {
		var part string
		part, rest, _ = strings.Cut(rest, "/")
		switch part {
		case "", ".":
		case "..":
			if done == "" {
				return "", nil, errForbidden
			}
			if done = path.Dir(done); done == "." {
				done = ""
			}
			fi = nil
		default:
			next := part
			if done != "" {
				next = done + "/" + part
			}
			var err error
			if fi, err = f.root.Lstat(next); err != nil {
				return "", nil, fileError(err)
			}
			if fi.Mode()&fs.ModeSymlink == 0 {
				done = next
				break
			}
			if links++; links > maxLinks {
				return "", nil, errForbidden
			}
			target, err := f.root.Readlink(next)
			if err != nil {
				return "", nil, fileError(err)
			}
			target = filepath.ToSlash(target)
			if filepath.IsAbs(target) {
				rel, ok := f.inside(target)
				if !ok {
					return "", nil, errForbidden // a link out of the root
				}
				done, target = "", rel
			}
			if rest != "" {
				target += "/" + rest
			}
			rest = target
			fi = nil
		}
		if rest == "" {
			break
		}
	}
	if done == "" {
		done = "."
	}
	if RefusedName(done) {
		return "", nil, errNotFound // a link to a script or a hidden file
	}
	if fi == nil { // the root itself, or a directory reached through ".."
		var err error
		if fi, err = f.root.Stat(done); err != nil {
			return "", nil, fileError(err)
		}
	}
	return done, fi, nil
}

// inside returns target, an absolute path, relative to the root, if it is
// below the directory under either of its names.
func (f *Files) inside(target string) (string, bool) {
	target = filepath.Clean(target)
	for _, dir := range f.dirs {
		if target == dir {
			return ".", true
		}
		if rel, ok := strings.CutPrefix(target, dir+string(filepath.Separator)); ok {
			return filepath.ToSlash(rel), true
		}
	}
	return "", false
}

// RefusedName reports whether a path below a static root names what is
// never served as a file (CONTRACT.md section 13): a name containing
// ".php" in any case, whose source a PHP site keeps beside its assets,
// and a segment starting with "." (.git, .env, .htpasswd) other than
// .well-known.
func RefusedName(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" && seg != "." {
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

func fileError(err error) *problem {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return errNotFound
	}
	return errForbidden
}

func redirectSlash(ctx *fasthttp.RequestCtx, path []byte) *problem {
	loc := urlpath.AppendEscaped(nil, path)
	loc = append(loc, '/')
	if q := ctx.URI().QueryString(); len(q) > 0 {
		loc = append(append(loc, '?'), q...)
	}
	ctx.Response.SetStatusCode(fasthttp.StatusMovedPermanently)
	ctx.Response.Header.SetBytesV("Location", loc)
	return nil
}
