package rules

import (
	"fmt"
	"strings"
)

// Vars are the values a Template's variables stand for in one request.
// They are slices of the request's own buffers: filling them copies
// nothing.
type Vars struct {
	RequestURI []byte // the request target as the client sent it ($request_uri)
	URI        []byte // the normalised path ($uri)
	Host       []byte // the host, lower case, without port ($host)
	Scheme     []byte // "http" or "https" ($scheme)
	Args       []byte // the query, without "?" ($args, $query_string)
}

// Variable names a Template knows, in the order of docs/config.md.
var Variables = []string{"request_uri", "uri", "host", "scheme", "args", "query_string", "is_args"}

type varKind uint8

const (
	literal varKind = iota
	varRequestURI
	varURI
	varHost
	varScheme
	varArgs
	varIsArgs
)

type part struct {
	kind varKind
	text string // literal only
}

// Template is a string with nginx variables ($uri or ${uri}) parsed once,
// at load, so that expanding it per request allocates nothing. The zero
// Template expands to "".
type Template struct {
	parts []part
	src   string
}

// String returns the template as written.
func (t *Template) String() string { return t.src }

// ParseTemplate reads s. A "$" followed by a letter or "{" starts a
// variable; a variable it does not know is an error naming it. Any other
// "$" is itself.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{src: s}
	lit := 0
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 >= len(s) || !(isNameByte(s[i+1]) || s[i+1] == '{') {
			i++
			continue
		}
		start, end, next := i+1, 0, 0
		if s[i+1] == '{' {
			start = i + 2
			j := strings.IndexByte(s[start:], '}')
			if j < 0 {
				return nil, fmt.Errorf("%q: ${ without its }", s)
			}
			end, next = start+j, start+j+1
		} else {
			end = start
			for end < len(s) && isNameByte(s[end]) {
				end++
			}
			next = end
		}
		k, ok := lookupVar(s[start:end])
		if !ok {
			return nil, fmt.Errorf("unknown variable $%s (known: $%s)", s[start:end], strings.Join(Variables, ", $"))
		}
		if lit < i {
			t.parts = append(t.parts, part{kind: literal, text: s[lit:i]})
		}
		t.parts = append(t.parts, part{kind: k})
		i, lit = next, next
	}
	if lit < len(s) {
		t.parts = append(t.parts, part{kind: literal, text: s[lit:]})
	}
	return t, nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func lookupVar(name string) (varKind, bool) {
	switch name {
	case "request_uri":
		return varRequestURI, true
	case "uri":
		return varURI, true
	case "host":
		return varHost, true
	case "scheme":
		return varScheme, true
	case "args", "query_string":
		return varArgs, true
	case "is_args":
		return varIsArgs, true
	}
	return 0, false
}

// HasVariables reports whether t is more than a literal.
func (t *Template) HasVariables() bool {
	for _, p := range t.parts {
		if p.kind != literal {
			return true
		}
	}
	return false
}

// Append appends t expanded with v to dst.
func (t *Template) Append(dst []byte, v *Vars) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case literal:
			dst = append(dst, p.text...)
		case varRequestURI:
			dst = append(dst, v.RequestURI...)
		case varURI:
			dst = append(dst, v.URI...)
		case varHost:
			dst = append(dst, v.Host...)
		case varScheme:
			dst = append(dst, v.Scheme...)
		case varArgs:
			dst = append(dst, v.Args...)
		case varIsArgs:
			if len(v.Args) > 0 {
				dst = append(dst, '?')
			}
		}
	}
	return dst
}
