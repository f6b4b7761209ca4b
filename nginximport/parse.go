// Package nginximport translates an nginx configuration into a
// sessionproxy one, and names what it cannot translate.
package nginximport

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Directive is one nginx directive: its name, its arguments with quotes and
// escapes resolved, where it starts, and its block if it has one.
type Directive struct {
	Name  string
	Args  []string
	File  string
	Line  int          // of the directive's name
	Block []*Directive // nil without a block; an empty block is not nil
	// HasBlock tells "location / {}" (a block, empty) from "return 200;".
	HasBlock bool
}

// ParseError is a syntax error at a line of a file.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads nginx's configuration syntax as nginx's own reader does
// (ngx_conf_file.c): words separated by white space, "..." and '...'
// quoting, backslash escapes, # comments, ";" ending a directive and
// "{" "}" around a block. include is not followed: it stays a directive.
func Parse(file string, src []byte) ([]*Directive, error) {
	l := &lexer{file: file, src: src, line: 1}
	ds, err := l.block(0)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 64

type lexer struct {
	file string
	src  []byte
	pos  int
	line int
}

func (l *lexer) errf(line int, format string, args ...any) error {
	return &ParseError{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// token kinds besides words
const (
	tokWord = iota
	tokSemi
	tokOpen
	tokClose
	tokEOF
)

// block reads directives up to the "}" that closes the block (depth > 0)
// or the end of the input (depth 0).
func (l *lexer) block(depth int) ([]*Directive, error) {
	if depth > maxDepth {
		return nil, l.errf(l.line, "blocks nested deeper than %d", maxDepth)
	}
	ds := []*Directive{}
	for {
		kind, word, line, err := l.next()
		if err != nil {
			return nil, err
		}
		switch kind {
		case tokEOF:
			if depth > 0 {
				return nil, l.errf(line, `unexpected end of file, expecting "}"`)
			}
			return ds, nil
		case tokClose:
			if depth == 0 {
				return nil, l.errf(line, `unexpected "}"`)
			}
			return ds, nil
		case tokSemi, tokOpen:
			return nil, l.errf(line, "unexpected %q", map[int]string{tokSemi: ";", tokOpen: "{"}[kind])
		}
		d := &Directive{Name: word, File: l.file, Line: line}
		if err := l.directive(d, depth); err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
}

// directive reads the arguments of d, and its block if one follows.
func (l *lexer) directive(d *Directive, depth int) error {
	for {
		kind, word, line, err := l.next()
		if err != nil {
			return err
		}
		switch kind {
		case tokWord:
			d.Args = append(d.Args, word)
		case tokSemi:
			return nil
		case tokOpen:
			d.HasBlock = true
			d.Block, err = l.block(depth + 1)
			return err
		case tokClose:
			return l.errf(line, `unexpected "}" after %q: a ";" is missing`, d.Name)
		case tokEOF:
			return l.errf(line, `unexpected end of file after %q, expecting ";" or "}"`, d.Name)
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the next token and the line it starts on.
func (l *lexer) next() (kind int, word string, line int, err error) {
	// white space and comments
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if c == '#' {
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
			continue
		}
		if !isSpace(c) {
			break
		}
		if c == '\n' {
			l.line++
		}
		l.pos++
	}
	line = l.line
	if l.pos == len(l.src) {
		return tokEOF, "", line, nil
	}
	switch l.src[l.pos] {
	case ';':
		l.pos++
		return tokSemi, "", line, nil
	case '{':
		l.pos++
		return tokOpen, "", line, nil
	case '}':
		l.pos++
		return tokClose, "", line, nil
	case '"', '\'':
		w, err := l.quoted()
		return tokWord, w, line, err
	}
	return tokWord, l.word(), line, nil
}

// word reads an unquoted word: up to white space, ";" or "{" (but "{"
// right after "$" belongs to a variable, as in ${name}). A backslash
// makes the next byte part of the word.
func (l *lexer) word() string {
	start := l.pos
	variable := false
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\\' && l.pos+1 < len(l.src):
			if l.src[l.pos+1] == '\n' {
				l.line++
			}
			l.pos += 2
			variable = false
			continue
		case c == '{' && variable:
		case isSpace(c) || c == ';' || c == '{':
			return unescape(l.src[start:l.pos])
		}
		variable = c == '$'
		l.pos++
	}
	return unescape(l.src[start:l.pos])
}

// quoted reads a "..." or '...' word. nginx wants white space, ";", "{"
// or ")" after the closing quote.
func (l *lexer) quoted() (string, error) {
	q := l.src[l.pos]
	startLine := l.line
	l.pos++
	start := l.pos
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\\' && l.pos+1 < len(l.src):
			if l.src[l.pos+1] == '\n' {
				l.line++
			}
			l.pos += 2
			continue
		case c == '\n':
			l.line++
		case c == q:
			w := unescape(l.src[start:l.pos])
			l.pos++
			if l.pos < len(l.src) {
				if n := l.src[l.pos]; !isSpace(n) && n != ';' && n != '{' && n != ')' {
					return "", l.errf(l.line, "unexpected %q after a quoted string", string(n))
				}
			}
			return w, nil
		}
		l.pos++
	}
	return "", l.errf(startLine, "unexpected end of file in a quoted string")
}

// unescape resolves \" \' \\ \t \r \n as nginx does; any other backslash
// is kept with the byte after it.
func unescape(b []byte) string {
	if !strings.Contains(string(b), `\`) {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			switch b[i+1] {
			case '"', '\'', '\\':
				i++
			case 't':
				out = append(out, '\t')
				i++
				continue
			case 'r':
				out = append(out, '\r')
				i++
				continue
			case 'n':
				out = append(out, '\n')
				i++
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

// ParseFile reads a configuration file and the files its include
// directives name, relative paths taken from the main file's directory
// (where nginx.conf's includes usually live). An included file's
// directives replace the include, each keeping its own file and line. An
// include that matches no file stays an include directive, with no block,
// for the translation to report.
func ParseFile(path string) ([]*Directive, error) {
	r := &includer{dir: filepath.Dir(path), active: map[string]bool{}}
	return r.file(path, 0)
}

type includer struct {
	dir    string
	active map[string]bool // files being read: an include cycle is an error
}

// maxIncludes bounds include nesting, as nginx's own stack does.
const maxIncludes = 32

func (r *includer) file(path string, depth int) ([]*Directive, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if r.active[abs] || depth > maxIncludes {
		return nil, fmt.Errorf("%s: include cycle", path)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ds, err := Parse(path, src)
	if err != nil {
		return nil, err
	}
	r.active[abs] = true
	defer delete(r.active, abs)
	return r.expand(ds, depth)
}

// expand replaces each include in ds, at any depth, by the directives of
// the files it matches.
func (r *includer) expand(ds []*Directive, depth int) ([]*Directive, error) {
	var out []*Directive
	for _, d := range ds {
		if d.Name == "include" && !d.HasBlock && len(d.Args) == 1 {
			pattern := d.Args[0]
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(r.dir, pattern)
			}
			files, _ := filepath.Glob(pattern) // a bad pattern matches nothing: reported
			if len(files) == 0 {
				out = append(out, d)
				continue
			}
			for _, f := range files {
				inc, err := r.file(f, depth+1)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: include %s: %w", d.File, d.Line, d.Args[0], err)
				}
				out = append(out, inc...)
			}
			continue
		}
		if d.HasBlock {
			inner, err := r.expand(d.Block, depth)
			if err != nil {
				return nil, err
			}
			if inner == nil {
				inner = []*Directive{}
			}
			d.Block = inner
		}
		out = append(out, d)
	}
	return out, nil
}

// Format writes directives back in nginx syntax, every word quoted, one
// directive a line; Parse of its output gives the same directives.
func Format(ds []*Directive) string {
	var b strings.Builder
	format(&b, ds, "")
	return b.String()
}

func format(b *strings.Builder, ds []*Directive, indent string) {
	for _, d := range ds {
		b.WriteString(indent)
		b.WriteString(quote(d.Name))
		for _, a := range d.Args {
			b.WriteByte(' ')
			b.WriteString(quote(a))
		}
		if !d.HasBlock {
			b.WriteString(";\n")
			continue
		}
		b.WriteString(" {\n")
		format(b, d.Block, indent+"    ")
		b.WriteString(indent + "}\n")
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
