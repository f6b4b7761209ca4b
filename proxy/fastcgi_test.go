package proxy

import "testing"

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
