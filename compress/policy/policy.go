// Package policy says which responses are compressed and with what: the
// encodings the proxy knows, the client's Accept-Encoding with its
// q-values, the compressible media types, and the options of the
// compression block with their checks. It imports the standard library
// only, so that config can ask it without linking the encoders.
package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Encoding is a content coding the proxy can produce. Its zero value,
// Identity, is no coding at all.
type Encoding uint8

// The encodings, in no order of preference (Options.Encodings gives one).
const (
	Identity Encoding = iota
	Zstd
	Brotli
	Gzip
	numEncodings
)

// names are the content-coding tokens of RFC 9110 section 8.4.1 (zstd
// from RFC 8878, br from RFC 7932).
var names = [numEncodings]string{Identity: "identity", Zstd: "zstd", Brotli: "br", Gzip: "gzip"}

// String returns the encoding's token as written in Content-Encoding.
func (e Encoding) String() string {
	if e < numEncodings {
		return names[e]
	}
	return "unknown"
}

// Known lists the encodings a configuration may name, in the default
// order of preference.
var Known = []string{"zstd", "br", "gzip"}

// ParseEncoding returns the Encoding of a configured name ("zstd", "br",
// "gzip"); ok is false for any other.
func ParseEncoding(name string) (e Encoding, ok bool) {
	for e := Zstd; e < numEncodings; e++ {
		if name == names[e] {
			return e, true
		}
	}
	return Identity, false
}

// Options are the compression block of the configuration. The zero value
// compresses nothing.
type Options struct {
	// Encodings are the codings offered, in the server's order of
	// preference, which breaks ties between q-values. Empty: none.
	Encodings []string
	// MinLength is the shortest body compressed when its length is
	// known; a body of unknown length is always compressed.
	MinLength int64
	// Types are the media types compressed: "type/subtype", or "type/*"
	// for all of a type.
	Types []string
	// Proxied compresses backends' responses too, not only static files.
	Proxied bool
}

// Defaults returns the options of a configuration that says nothing:
// zstd, br and gzip, from 1 KiB, text and the usual textual application
// types, static files only (CONTRACT.md section 14).
func Defaults() Options {
	return Options{
		Encodings: append([]string(nil), Known...),
		MinLength: 1 << 10,
		Types:     []string{"text/*", "application/json", "application/javascript", "application/xml", "image/svg+xml"},
	}
}

// Problem is one thing wrong in Options: Field is its path below the
// compression block ("encodings[1]", "min_length").
type Problem struct {
	Field string
	Msg   string
}

// Check returns every problem in o, in field order: an unknown or repeated
// encoding, a negative min_length, a type that is not type/subtype.
func (o Options) Check() []Problem {
	var ps []Problem
	seen := map[string]bool{}
	for i, name := range o.Encodings {
		f := fmt.Sprintf("encodings[%d]", i)
		if _, ok := ParseEncoding(name); !ok {
			ps = append(ps, Problem{f, fmt.Sprintf("unknown encoding %q (want %s)", name, strings.Join(Known, " | "))})
		} else if seen[name] {
			ps = append(ps, Problem{f, fmt.Sprintf("encoding %q is listed twice", name)})
		}
		seen[name] = true
	}
	if o.MinLength < 0 {
		ps = append(ps, Problem{"min_length", fmt.Sprintf("min_length must be 0 or more, got %d", o.MinLength)})
	}
	for i, t := range o.Types {
		if err := checkType(t); err != nil {
			ps = append(ps, Problem{fmt.Sprintf("types[%d]", i), err.Error()})
		}
	}
	return ps
}

func checkType(t string) error {
	typ, sub, ok := strings.Cut(t, "/")
	if !ok || !isToken(typ) || !(sub == "*" || isToken(sub)) || typ == "*" {
		return fmt.Errorf("type %q is not type/subtype or type/*", t)
	}
	if strings.ToLower(t) != t {
		return fmt.Errorf("type %q: write media types in lower case", t)
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar(s[i]) {
			return false
		}
	}
	return true
}

func tokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", rune(c))
}

// Policy is Options made ready for the request path: Negotiate and
// Compressible do not allocate. Safe for concurrent use by multiple
// goroutines. A nil *Policy compresses nothing.
type Policy struct {
	encodings []Encoding // in order of preference
	minLength int64
	exact     []string // media types matched whole
	prefixes  []string // "text/" of "text/*"
	proxied   bool
}

// New returns the Policy of o, or an error for the first problem Check
// finds.
func New(o Options) (*Policy, error) {
	if ps := o.Check(); len(ps) > 0 {
		return nil, errors.New("compression." + ps[0].Field + ": " + ps[0].Msg)
	}
	p := &Policy{minLength: o.MinLength, proxied: o.Proxied}
	for _, name := range o.Encodings {
		e, _ := ParseEncoding(name)
		p.encodings = append(p.encodings, e)
	}
	for _, t := range o.Types {
		if pre, ok := strings.CutSuffix(t, "*"); ok {
			p.prefixes = append(p.prefixes, pre)
		} else {
			p.exact = append(p.exact, t)
		}
	}
	return p, nil
}

// On reports whether p may compress anything.
func (p *Policy) On() bool { return p != nil && len(p.encodings) > 0 }

// Proxied reports whether backends' responses are compressed too.
func (p *Policy) Proxied() bool { return p.On() && p.proxied }

// MinLength is the shortest body of known length that is compressed.
func (p *Policy) MinLength() int64 { return p.minLength }

// Compressible reports whether a response of this Content-Type is
// compressed: its media type, before any parameter, compared without
// regard to case.
func (p *Policy) Compressible(contentType []byte) bool {
	if p == nil {
		return false
	}
	mt := contentType
	for i, c := range mt {
		if c == ';' {
			mt = mt[:i]
			break
		}
	}
	mt = trimOWS(mt)
	if len(mt) == 0 {
		return false
	}
	for _, t := range p.exact {
		if equalFold(mt, t) {
			return true
		}
	}
	for _, pre := range p.prefixes {
		if len(mt) > len(pre) && equalFold(mt[:len(pre)], pre) {
			return true
		}
	}
	return false
}
