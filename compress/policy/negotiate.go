package policy

// Negotiate returns the encoding for a request whose Accept-Encoding
// header is ae (RFC 9110 section 12.5.3), among p's encodings: the one
// with the highest q-value, ties going to p's order of preference. An
// encoding the header does not name takes the q-value of "*" if it is
// there, else it is not acceptable; q=0 excludes. Identity (no coding)
// is the answer when the header is empty or absent (as nginx and Caddy
// read it, though the RFC would allow any coding), when no encoding of
// p is acceptable, and when the header names identity with a q-value
// above the best encoding's. "x-gzip" is gzip (section 8.4.1.3). An
// element whose weight is not a valid qvalue is ignored. It does not
// allocate.
func (p *Policy) Negotiate(ae []byte) Encoding {
	if !p.On() || len(ae) == 0 {
		return Identity
	}
	var q [numEncodings]int // thousandths; -1: not named
	for i := range q {
		q[i] = -1
	}
	star := -1
	for len(ae) > 0 {
		var elem []byte
		elem, ae = cutByte(ae, ',')
		name, params := cutByte(elem, ';')
		name = trimOWS(name)
		if len(name) == 0 {
			continue
		}
		w, ok := weight(params)
		if !ok {
			continue
		}
		switch {
		case len(name) == 1 && name[0] == '*':
			if star < 0 {
				star = w
			}
		default:
			if e, known := codingOf(name); known && q[e] < 0 {
				q[e] = w
			}
		}
	}
	best, bestQ := Identity, 0
	for _, e := range p.encodings {
		w := q[e]
		if w < 0 {
			w = max(star, 0)
		}
		if w > bestQ {
			best, bestQ = e, w
		}
	}
	if best != Identity && q[Identity] > bestQ {
		return Identity
	}
	return best
}

// codingOf returns the Encoding a content-coding token names, in any case.
func codingOf(name []byte) (Encoding, bool) {
	switch {
	case equalFold(name, "gzip"), equalFold(name, "x-gzip"):
		return Gzip, true
	case equalFold(name, "br"):
		return Brotli, true
	case equalFold(name, "zstd"):
		return Zstd, true
	case equalFold(name, "identity"):
		return Identity, true
	}
	return Identity, false
}

// weight reads an element's parameters (what follows its first ";") and
// returns its q-value in thousandths: 1000 when there is no q parameter.
// A q parameter that is not a valid qvalue makes ok false. Parameters
// other than q, which Accept-Encoding does not define, are passed over.
func weight(params []byte) (w int, ok bool) {
	w = 1000
	for len(params) > 0 {
		var p []byte
		p, params = cutByte(params, ';')
		p = trimOWS(p)
		if len(p) >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=' {
			return qvalue(p[2:])
		}
	}
	return w, true
}

// qvalue parses ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) into
// thousandths.
func qvalue(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 || b[0] != '0' && b[0] != '1' {
		return 0, false
	}
	v := int(b[0]-'0') * 1000
	if len(b) == 1 {
		return v, true
	}
	if b[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range b[2:] {
		if c < '0' || c > '9' || v == 1000 && c != '0' {
			return 0, false
		}
		v += int(c-'0') * scale
		scale /= 10
	}
	return v, true
}

// cutByte splits b around the first sep; after is empty when there is none.
func cutByte(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with s, an ASCII lower-case string, in any case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
