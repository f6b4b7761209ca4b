package static

import (
	"bytes"
	"path/filepath"
	"strings"
)

// Exists reports whether path, a normalised path, names what try_files
// looks for: a regular file, or, when path ends in "/", a directory. It
// applies the same refusals as Serve (NUL, escaped "/", names never
// served, a link out of the directory), so that what it finds is what
// Serve would answer with a file.
func (f *Files) Exists(path []byte) bool {
	if bytes.IndexByte(path, 0) >= 0 || bytes.Contains(path, []byte("/../")) ||
		bytes.HasSuffix(path, []byte("/..")) || bytes.Contains(path, []byte("%2F")) {
		return false
	}
	file := string(path)
	if strings.Contains(file, "%25") {
		file = strings.ReplaceAll(file, "%25", "%")
	}
	if RefusedName(file) {
		return false
	}
	if f.prefix != "" && strings.HasPrefix(file, f.prefix) {
		file = f.replacement + "/" + file[len(f.prefix):]
	}
	_, fi, p := f.resolve(filepath.ToSlash(file))
	if p != nil {
		return false
	}
	if strings.HasSuffix(file, "/") {
		return fi.IsDir()
	}
	return fi.Mode().IsRegular()
}
