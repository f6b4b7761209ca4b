package rules

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10r/s", "1r/m", "0r/s", "1000000r/s", "1000001r/s", "r/s", "10r/h", "99999999999999999999999r/m", "+5r/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.Interval < time.Microsecond || r.Interval > time.Minute {
			t.Fatalf("%q: interval %v out of range", s, r.Interval)
		}
	})
}

// FuzzTemplate: a template that parses expands its literal parts as
// written; with every variable empty it is the source without its
// variables, and it never panics.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"https://example.com$request_uri", "${host}$uri$is_args$args", "$", "${", "${}", "$$uri", "$uri$", "${uri}x", "$nope", "a$1"} {
		f.Add(s, "/p", "q=1")
	}
	f.Fuzz(func(t *testing.T, s, uri, args string) {
		tpl, err := ParseTemplate(s)
		if err != nil {
			if !strings.Contains(s, "$") {
				t.Fatalf("%q without $ refused: %v", s, err)
			}
			return
		}
		if tpl.String() != s {
			t.Fatalf("String %q, want %q", tpl.String(), s)
		}
		if !strings.Contains(s, "$") && string(tpl.Append(nil, &Vars{URI: []byte(uri)})) != s {
			t.Fatalf("%q: a literal changed", s)
		}
		out := tpl.Append(nil, &Vars{URI: []byte(uri), Args: []byte(args)})
		if !tpl.HasVariables() && string(out) != s {
			t.Fatalf("%q: literal template expands to %q", s, out)
		}
	})
}

// FuzzHtpasswd: any file either fails to parse or gives entries that
// Verify can be asked about without panicking; an error names a line.
func FuzzHtpasswd(f *testing.F) {
	f.Add([]byte("alice:$2y$04$6nJ0Fx8uKGi6yV0HCE8dZ.1V2Zr1k8VNqFQeQ7xV2tJ7N.2TzEQ3a\n"))
	f.Add([]byte("# c\n\nbob:$2b$04$abcdefghijklmnopqrstuuVNqFQeQ7xV2tJ7N.2TzEQ3aXYZabcde:x\r\n"))
	f.Add([]byte("alice:plain\n"))
	f.Add([]byte(":\n"))
	f.Add([]byte("a:$2y$99$\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		h, err := ParseHtpasswd(data)
		if err != nil {
			return
		}
		if len(h.entries) == 0 {
			t.Fatal("parsed without entries")
		}
		h.Verify([]byte("alice"), []byte("x"))
	})
}

// FuzzPathRegex: the literal checks in front of the regular expression
// never change its answer.
func FuzzPathRegex(f *testing.F) {
	for _, s := range [][3]string{
		{`\.(php|phar)$`, "/x.php", ""}, {`^/api/[1-9]\d*/`, "/api/12/x", ""}, {`^/static/.*\.map$`, "/static/a.map", ""},
		{`^/health`, "/HEALTH", "i"}, {`^/kelvin`, "/\u212aelvin", "i"}, {`/\.git`, "/a/.git/x", ""}, {`(a|b)+c{2,}`, "xabcc", ""},
		{`^(/x)`, "/x", ""}, {`\.env$`, "/.ENV", "i"}, {`^/u/[^/]+/avatar`, "/u/bob/avatar", ""},
	} {
		f.Add(s[0], s[1], s[2] == "i")
	}
	f.Fuzz(func(t *testing.T, expr, path string, fold bool) {
		p, err := CompilePathRegex(expr, fold)
		if err != nil {
			return
		}
		if got, want := p.Match([]byte(path)), p.re.MatchString(path); got != want {
			t.Fatalf("%q (fold %v) on %q: %v, the regular expression says %v (prefix %q contains %q)", expr, fold, path, got, want, p.prefix, p.contains)
		}
	})
}
