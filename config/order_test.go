package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// orderTests are configurations with several errors whose checks do not
// run down the file, or that come from maps (error_pages, upstreams),
// which Go iterates in a different order each time.
var orderTests = []struct {
	name, text string
	want       []string // every error, in order, each the prefix of one
}{
	{"error_pages down the file", `backends: [{url: "http://a:1"}]
error_pages:
  599: "/nonexistent/599.html"
  404: "/nonexistent/404.html"
  200: "/nonexistent/200.html"
  503: "/nonexistent/503.html"
  302: "/nonexistent/302.html"
`, []string{
		"line 3: error_pages.599: open /nonexistent/599.html: ",
		"line 4: error_pages.404: open /nonexistent/404.html: ",
		"line 5: error_pages: 200 is not an error status",
		"line 5: error_pages.200: open /nonexistent/200.html: ",
		"line 6: error_pages.503: open /nonexistent/503.html: ",
		"line 7: error_pages: 302 is not an error status",
		"line 7: error_pages.302: open /nonexistent/302.html: ",
	}},
	// A flow mapping puts every entry on one line: by status there.
	{"error_pages on one line", `backends: [{url: "http://a:1"}]
error_pages: {599: "/nonexistent/599.html", 404: "/nonexistent/404.html", 503: "/nonexistent/503.html", 200: "/nonexistent/200.html"}
`, []string{
		"line 2: error_pages: 200 is not an error status",
		"line 2: error_pages.200: open /nonexistent/200.html: ",
		"line 2: error_pages.404: open /nonexistent/404.html: ",
		"line 2: error_pages.503: open /nonexistent/503.html: ",
		"line 2: error_pages.599: open /nonexistent/599.html: ",
	}},
	{"upstreams down the file, not by name", `backends: [{url: "http://a:1"}]
upstreams:
  zeta: {balancer: random, backends: [{url: "http://z:1"}]}
  alpha: {balancer: random, backends: [{url: "http://y:1"}]}
`, []string{
		`line 3: upstreams.zeta.balancer: unknown value "random"`,
		`line 4: upstreams.alpha.balancer: unknown value "random"`,
	}},
	{"topics checked apart, reported down the file", `error_pages: {404: "/nonexistent/404.html"}
session:
  ttl: 0s
retries: 11
listen: "nope"
`, []string{
		"no backends",
		"line 1: error_pages.404: open /nonexistent/404.html: ",
		"line 3: session.ttl must be at least 1s",
		"line 4: retries must be between 0 and 10, got 11",
		`line 5: listen: "nope" is not a host:port address`,
	}},
}

// TestErrorsInFileOrder: Validate lists its errors in the order a reader
// meets them in the file, the same every time. Each text is checked many
// times, since a map iterated in a random order can come out right once.
func TestErrorsInFileOrder(t *testing.T) {
	for _, tt := range orderTests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				var es Errors
				if _, err := Load([]byte(tt.text)); !errors.As(err, &es) {
					t.Fatalf("Load = %v, want Errors", err)
				}
				got := make([]string, len(es))
				for i, e := range es {
					got[i] = e.Error()
				}
				if !slices.EqualFunc(got, tt.want, strings.HasPrefix) {
					t.Fatalf("errors:\n%s\nwant, in this order, errors starting with:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
			}
		})
	}
}
