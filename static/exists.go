package static

import (
	"bytes"
	"strings"
)

// Exists reports whether path, a normalised path, names what try_files
// looks for: a regular file, or, when path ends in "/", a directory. It
// applies the same refusals as Serve (NUL, escaped "/", names never
// served, a link out of the directory), so that what it finds is what
// Serve would answer with a file.
func (f *Files) Exists(path []byte) bool {
	if bytes.IndexByte(path, 0) >= 0 || bytes.Contains(path, []byte("/../")) || bytes.HasSuffix(path, []byte("/..")) {
		return false
	}
	file, _, fi, p := f.find(path)
	if p != nil {
		return false
	}
	if strings.HasSuffix(file, "/") {
		return fi.IsDir()
	}
	return fi.Mode().IsRegular()
}
