package proxy

import (
	"strings"
	"testing"
)

// Which script a normalised path runs: the first ".php" that ends a
// segment with a name before it.
func TestSplitScript(t *testing.T) {
	for path, want := range map[string][2]string{
		"/index.php":     {"/index.php", ""},
		"/a/b.php/c/d":   {"/a/b.php", "/c/d"},
		"/a.php.bak":     {"", ""},
		"/a.phpx/b.php":  {"/a.phpx/b.php", ""},
		"/.php":          {"", ""},
		"/.php/x.php":    {"/.php/x.php", ""},
		"/a/":            {"", ""},
		"/x.php/y.php/z": {"/x.php", "/y.php/z"},
		"/up.PHP":        {"", ""},
		"/":              {"", ""},
		"/dir.php/":      {"/dir.php", "/"},
	} {
		s, p := splitScript([]byte(path))
		if string(s) != want[0] || string(p) != want[1] {
			t.Errorf("%s: %q %q, want %q %q", path, s, p, want[0], want[1])
		}
	}
}

// FuzzSplitScript: the script and PATH_INFO always make the path back,
// the script names a .php segment, and PATH_INFO starts a segment.
func FuzzSplitScript(f *testing.F) {
	for _, s := range []string{"/index.php", "/a/b.php/c", "/.php", "/a.php.php/x.php", "/%2e.php", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		s, p := splitScript([]byte(path))
		if s == nil {
			if p != nil {
				t.Fatal("PATH_INFO without a script")
			}
			return
		}
		if string(s)+string(p) != path || len(s) < 5 || string(s[len(s)-4:]) != ".php" || s[len(s)-5] == '/' ||
			(len(p) > 0 && p[0] != '/') {
			t.Fatalf("%q split as %q %q", path, s, p)
		}
	})
}

// Which script a normalised path names in a pool with script: path: the
// whole path, when its last segment ends in ".php" after a name.
func TestWholeScript(t *testing.T) {
	for path, want := range map[string]string{
		"/index.php":        "/index.php",
		"/a/b.php":          "/a/b.php",
		"/a.php/rest":       "",
		"/a.php/":           "",
		"/a.php/b.php":      "/a.php/b.php",
		"/.php":             "",
		"/a/.php":           "",
		"/a.php.":           "",
		"/a.PHP":            "",
		"/a.php%2Fx":        "",
		"/x%2Fa.php":        "/x%2Fa.php", // refused by params: a "%" in a script's name
		"/":                 "",
		"":                  "",
		"/a.phpx":           "",
		"/a.php/rest/b.php": "/a.php/rest/b.php",
	} {
		if got := string(wholeScript([]byte(path))); got != want {
			t.Errorf("%q: %q, want %q", path, got, want)
		}
	}
}

// FuzzWholeScript: a script is the whole path, its last segment a name
// ending in ".php"; a path with PATH_INFO past a ".php" segment names none.
func FuzzWholeScript(f *testing.F) {
	for _, s := range []string{"/index.php", "/a.php/rest", "/.php", "/a.php/b.php", "/a.php.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		s := wholeScript([]byte(path))
		if s == nil {
			return
		}
		name := path[strings.LastIndexByte(path, '/')+1:]
		if string(s) != path || !strings.HasSuffix(name, ".php") || len(name) < 5 {
			t.Fatalf("%q: script %q", path, s)
		}
	})
}
