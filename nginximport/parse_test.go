package nginximport

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var parseTests = []struct {
	name, src string
	want      string // Format of the result
}{
	{"words and blocks", "http { server { listen 80; } }\n",
		"\"http\" {\n    \"server\" {\n        \"listen\" \"80\";\n    }\n}\n"},
	{"quotes and escapes", `a "b c" 'd;e' f\ g "h\"i" "j\tk" "l\qm";`,
		"\"a\" \"b c\" \"d;e\" \"f\\\\ g\" \"h\\\"i\" \"j\tk\" \"l\\\\qm\";\n"},
	{"comments", "# top\na b; # after\nc#d e;\n", "\"a\" \"b\";\n\"c#d\" \"e\";\n"},
	{"variables with braces", "return 301 https://${host}$request_uri;", "\"return\" \"301\" \"https://${host}$request_uri\";\n"},
	{"empty block", "location / {}", "\"location\" \"/\" {\n}\n"},
	{"brace inside a word", "a b}c;", "\"a\" \"b}c\";\n"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse("t.conf", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if got := Format(ds); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseLines(t *testing.T) {
	ds, err := Parse("t.conf", []byte("http {\n  server {\n    listen\n      80;\n    location \"/a\nb\" { root /x; }\n  }\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := ds[0].Block[0]
	if ds[0].Line != 1 || srv.Line != 2 || srv.Block[0].Line != 3 || srv.Block[1].Line != 5 || srv.Block[1].Block[0].Line != 6 {
		t.Fatalf("lines: http %d server %d listen %d location %d root %d", ds[0].Line, srv.Line, srv.Block[0].Line,
			srv.Block[1].Line, srv.Block[1].Block[0].Line)
	}
}

var parseErrorTests = []struct{ src, want string }{
	{"a b", `t.conf:1: unexpected end of file after "a", expecting ";" or "}"`},
	{"http {\n a;\n", `t.conf:3: unexpected end of file, expecting "}"`},
	{"}\n", `t.conf:1: unexpected "}"`},
	{";", `t.conf:1: unexpected ";"`},
	{"a {\n b c }", `t.conf:2: unexpected "}" after "b": a ";" is missing`},
	{"a \"b\n", `t.conf:1: unexpected end of file in a quoted string`},
	{`a "b"c;`, `t.conf:1: unexpected "c" after a quoted string`},
	{strings.Repeat("a {", 100) + strings.Repeat("}", 100), "t.conf:1: blocks nested deeper than 64"},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		_, err := Parse("t.conf", []byte(tt.src))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q): %v, want %s", tt.src, err, tt.want)
		}
	}
}

func TestParseFileIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nginx.conf", "http {\n  include sites/*.conf;\n  include missing.conf;\n}\n")
	write("sites/a.conf", "server { listen 80; }\n")
	write("sites/b.conf", "\n\nserver { listen 81; }\n")
	ds, err := ParseFile(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	http := ds[0].Block
	if len(http) != 3 || http[0].Name != "server" || http[1].Name != "server" || http[2].Name != "include" {
		t.Fatalf("http block: %s", Format(http))
	}
	if !strings.HasSuffix(http[0].File, "a.conf") || http[0].Line != 1 || !strings.HasSuffix(http[1].File, "b.conf") || http[1].Line != 3 {
		t.Fatalf("included servers at %s:%d and %s:%d", http[0].File, http[0].Line, http[1].File, http[1].Line)
	}
	write("sites/c.conf", "include nginx.conf;\n")
	if _, err := ParseFile(filepath.Join(dir, "nginx.conf")); err == nil || !strings.Contains(err.Error(), "include cycle") {
		t.Fatalf("include cycle: %v", err)
	}
}

// FuzzParse checks that the reader never panics on any input and that what
// it reads, written back by Format, reads the same.
func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.src)
	}
	for _, tt := range parseErrorTests {
		f.Add(tt.src)
	}
	f.Add(realisticConf)
	f.Fuzz(func(t *testing.T, src string) {
		ds, err := Parse("f.conf", []byte(src))
		if err != nil {
			return
		}
		again, err := Parse("f.conf", []byte(Format(ds)))
		if err != nil {
			t.Fatalf("Format's output does not parse: %v\n%s", err, Format(ds))
		}
		if !reflect.DeepEqual(strip(ds), strip(again)) {
			t.Fatalf("round trip changed the directives:\n%s\n%s", Format(ds), Format(again))
		}
	})
}

// strip drops positions, which Format does not keep.
func strip(ds []*Directive) []*Directive {
	out := []*Directive{}
	for _, d := range ds {
		c := *d
		c.File, c.Line = "", 0
		if c.HasBlock {
			c.Block = strip(c.Block)
		}
		out = append(out, &c)
	}
	return out
}
