package rules

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// PathRegex is a route's regular expression (RE2, nginx's "location ~"),
// compiled at load with what any match needs: a literal the path must
// start with (from "^/api/") and a literal it must contain (the longest
// run of literal characters every match holds, as ".env" in "\.env$").
// Checking those first answers most paths that do not match without
// running the regular expression: a table of many regex routes costs
// little on the requests that none of them matches. Safe for concurrent
// use by multiple goroutines.
type PathRegex struct {
	re       *regexp.Regexp
	prefix   []byte // the path starts with it (ASCII case folded when fold)
	fold     bool
	contains []byte // the path contains it; empty when nothing is known
}

// CompilePathRegex compiles expr; ignoreCase is nginx's "~*".
func CompilePathRegex(expr string, ignoreCase bool) (*PathRegex, error) {
	if ignoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	p := &PathRegex{re: re}
	if tree, err := syntax.Parse(expr, syntax.Perl); err == nil {
		prefix, fold := anchoredPrefix(tree.Simplify())
		p.prefix, p.fold = []byte(prefix), fold
		p.contains = []byte(requiredLiteral(tree.Simplify()))
	}
	return p, nil
}

// String returns the regular expression as compiled.
func (p *PathRegex) String() string { return p.re.String() }

// Match reports whether path matches. It does not allocate.
func (p *PathRegex) Match(path []byte) bool {
	if len(p.prefix) > 0 {
		if len(path) < len(p.prefix) {
			return false
		}
		if p.fold {
			if !bytes.EqualFold(path[:len(p.prefix)], p.prefix) {
				return false
			}
		} else if !bytes.Equal(path[:len(p.prefix)], p.prefix) {
			return false
		}
	}
	switch len(p.contains) {
	case 0:
	case 1:
		if bytes.IndexByte(path, p.contains[0]) < 0 {
			return false
		}
	default:
		if !bytes.Contains(path, p.contains) {
			return false
		}
	}
	return p.re.Match(path)
}

// literalOf returns a literal node's text and whether it folds case; ok
// is false when the text is not plain ASCII (folding beyond ASCII is
// left to the regular expression).
func literalOf(re *syntax.Regexp) (s string, fold, ok bool) {
	if re.Op != syntax.OpLiteral {
		return "", false, false
	}
	var b strings.Builder
	letters := false
	for _, r := range re.Rune {
		if r >= utf8.RuneSelf {
			return "", false, false
		}
		letters = letters || 'a' <= r|0x20 && r|0x20 <= 'z'
		b.WriteRune(r)
	}
	// Under (?i) every literal is marked as folding; one without letters
	// has no case to fold.
	return b.String(), letters && re.Flags&syntax.FoldCase != 0, true
}

// anchoredPrefix returns the literal that follows a leading "^" (begin of
// text), if any.
func anchoredPrefix(re *syntax.Regexp) (string, bool) {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return "", false
	}
	s, fold, ok := literalOf(re.Sub[1])
	if !ok || fold && strings.ContainsAny(s, "kKsS") {
		// Under (?i), k and s also match the Kelvin sign and the long
		// s, which are not ASCII: no byte prefix stands for them.
		return "", false
	}
	return s, fold
}

// requiredLiteral returns the longest case-sensitive ASCII literal that
// every match of re contains, or "".
func requiredLiteral(re *syntax.Regexp) string {
	best := ""
	var walk func(re *syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		switch re.Op {
		case syntax.OpLiteral:
			if s, fold, ok := literalOf(re); ok && !fold && len(s) > len(best) {
				best = s
			}
		case syntax.OpConcat, syntax.OpCapture, syntax.OpPlus:
			// Every part of a concatenation is in every match, and so
			// is what a capture or a "+" holds.
			for _, sub := range re.Sub {
				walk(sub)
			}
		case syntax.OpRepeat:
			if re.Min >= 1 {
				walk(re.Sub[0])
			}
		}
	}
	walk(re)
	return best
}

// Prefix returns the literal every matching path starts with ("" when
// none is known) and whether it is compared ignoring ASCII case.
func (p *PathRegex) Prefix() (string, bool) { return string(p.prefix), p.fold }
