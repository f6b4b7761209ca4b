package policy

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func mustPolicy(t testing.TB, encodings ...string) *Policy {
	t.Helper()
	o := Defaults()
	o.Encodings = encodings
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// negotiateTests is the q-value table: the configured order is
// zstd, br, gzip unless the case says otherwise.
var negotiateTests = []struct {
	ae   string
	want Encoding
}{
	{"", Identity},
	{"gzip", Gzip},
	{"gzip, deflate, br", Brotli},             // order of preference breaks the tie
	{"gzip, deflate, br, zstd", Zstd},         // Chrome's
	{"br;q=1.0, gzip;q=0.8, *;q=0.1", Brotli}, // zstd only through "*", at 0.1
	{"gzip;q=1, br;q=0.5", Gzip},
	{"zstd;q=0, br;q=0, gzip;q=0", Identity},
	{"gzip;q=0", Identity},
	{"*", Zstd},
	{"*;q=0", Identity},
	{"*;q=0, gzip", Gzip},
	{"*, zstd;q=0", Brotli},
	{"*;q=0.5, br;q=0.6", Brotli},
	{"identity", Identity},
	{"identity;q=1, gzip;q=0.5", Identity}, // identity is preferred
	{"identity;q=0.5, gzip", Gzip},
	{"identity;q=0, gzip;q=0.001", Gzip},
	{"GZIP", Gzip},
	{"x-gzip", Gzip},
	{"gzip ; q=0.5 , br ; Q=0.6", Brotli},
	{"gzip;q=0.5;foo=bar", Gzip},
	{"gzip;q=2, br;q=0.1", Brotli}, // q=2 is invalid: that element is ignored
	{"gzip;q=abc", Identity},
	{"gzip;q=0.1234", Identity},
	{"gzip;q=1.5", Identity},
	{"gzip;q=1.000, zstd;q=1.0", Zstd},
	{"gzip;q=0.999, zstd;q=0.998", Gzip},
	{"gzip;q=., br;q=0.", Identity}, // "." alone is not a qvalue; "0." is 0
	{"gzip;q=0., br", Brotli},
	{"deflate, compress", Identity},
	{",,, ,gzip,,", Gzip},
	{"gzip, gzip;q=0", Gzip}, // the first listing counts
	{"\tbr\t", Brotli},
	{"gzipx, brr", Identity},
}

func TestNegotiate(t *testing.T) {
	p := mustPolicy(t, "zstd", "br", "gzip")
	for _, tt := range negotiateTests {
		if got := p.Negotiate([]byte(tt.ae)); got != tt.want {
			t.Errorf("Negotiate(%q) = %v, want %v", tt.ae, got, tt.want)
		}
		if got, want := p.Negotiate([]byte(tt.ae)), reference(tt.ae, p.encodings); got != want {
			t.Errorf("Negotiate(%q) = %v, reference says %v", tt.ae, got, want)
		}
	}
}

func TestNegotiateConfiguredOrder(t *testing.T) {
	p := mustPolicy(t, "gzip", "br") // no zstd, gzip first
	for ae, want := range map[string]Encoding{
		"gzip, br, zstd": Gzip,
		"zstd":           Identity,
		"br, zstd":       Brotli,
		"*":              Gzip,
		"gzip;q=0.5, br": Brotli,
	} {
		if got := p.Negotiate([]byte(ae)); got != want {
			t.Errorf("Negotiate(%q) = %v, want %v", ae, got, want)
		}
	}
	if got := mustPolicy(t).Negotiate([]byte("gzip")); got != Identity {
		t.Errorf("with no encodings configured: %v, want identity", got)
	}
	var nilPolicy *Policy
	if nilPolicy.Negotiate([]byte("gzip")) != Identity || nilPolicy.Compressible([]byte("text/html")) {
		t.Error("a nil Policy compresses")
	}
}

func TestNegotiateAllocs(t *testing.T) {
	p := mustPolicy(t, "zstd", "br", "gzip")
	ae := []byte("gzip;q=0.8, deflate, br;q=0.9, zstd;q=0.1, *;q=0")
	if n := testing.AllocsPerRun(100, func() { p.Negotiate(ae) }); n != 0 {
		t.Errorf("Negotiate allocates %v times", n)
	}
}

var qvalueRE = regexp.MustCompile(`^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$`)

// reference is Negotiate written the plain way, with strings and floats:
// the fuzz target compares the two.
func reference(ae string, prefs []Encoding) Encoding {
	q := map[string]float64{}
	for _, elem := range strings.Split(ae, ",") {
		parts := strings.Split(elem, ";")
		name := strings.ToLower(strings.Trim(parts[0], " \t"))
		if name == "" {
			continue
		}
		if name == "x-gzip" {
			name = "gzip"
		}
		w, valid := 1.0, true
		for _, prm := range parts[1:] {
			prm = strings.Trim(prm, " \t")
			if len(prm) >= 2 && (prm[0] == 'q' || prm[0] == 'Q') && prm[1] == '=' {
				if !qvalueRE.MatchString(prm[2:]) {
					valid = false
				} else {
					w, _ = strconv.ParseFloat(strings.TrimSuffix(prm[2:], "."), 64)
				}
				break
			}
		}
		if !valid {
			continue
		}
		if _, dup := q[name]; !dup {
			q[name] = w
		}
	}
	best, bestQ := Identity, 0.0
	for _, e := range prefs {
		w, ok := q[e.String()]
		if !ok {
			w = q["*"] // 0 when absent
		}
		if w > bestQ+1e-9 {
			best, bestQ = e, w
		}
	}
	if iq, ok := q["identity"]; ok && best != Identity && iq > bestQ+1e-9 {
		return Identity
	}
	return best
}

// FuzzAcceptEncoding checks the parser against the plain reference on any
// header value, and that what it picks is configured and acceptable.
func FuzzAcceptEncoding(f *testing.F) {
	for _, tt := range negotiateTests {
		f.Add(tt.ae)
	}
	f.Add("br;q=0.9;q=0.1, gzip;q=1.")
	f.Add("*;q=1.000, identity;q=0.999")
	p := mustPolicy(f, "zstd", "br", "gzip")
	f.Fuzz(func(t *testing.T, ae string) {
		got := p.Negotiate([]byte(ae))
		if want := reference(ae, p.encodings); got != want {
			t.Fatalf("Negotiate(%q) = %v, reference %v", ae, got, want)
		}
	})
}

func TestCheck(t *testing.T) {
	o := Options{Encodings: []string{"gzip", "deflate", "gzip"}, MinLength: -1, Types: []string{"text/*", "Text/HTML", "json", "*/*", "application/json"}}
	var got []string
	for _, p := range o.Check() {
		got = append(got, p.Field+": "+p.Msg)
	}
	want := []string{
		`encodings[1]: unknown encoding "deflate" (want zstd | br | gzip)`,
		`encodings[2]: encoding "gzip" is listed twice`,
		`min_length: min_length must be 0 or more, got -1`,
		`types[1]: type "Text/HTML": write media types in lower case`,
		`types[2]: type "json" is not type/subtype or type/*`,
		`types[3]: type "*/*" is not type/subtype or type/*`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Check:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ps := Defaults().Check(); len(ps) != 0 {
		t.Errorf("the defaults have problems: %v", ps)
	}
}

func TestCompressible(t *testing.T) {
	p := mustPolicy(t, "gzip")
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8": true,
		"TEXT/CSS":                 true,
		"text/event-stream":        true,
		"application/json":         true,
		" application/json ;x=y":   true,
		"application/jsonx":        false,
		"application/javascript":   true,
		"image/svg+xml":            true,
		"image/png":                false,
		"text":                     false,
		"text/":                    false,
		"":                         false,
		"application/octet-stream": false,
	} {
		if got := p.Compressible([]byte(ct)); got != want {
			t.Errorf("Compressible(%q) = %v, want %v", ct, got, want)
		}
	}
}
