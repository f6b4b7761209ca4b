package proxy

import (
	"math/rand/v2"
	"testing"

	"sessionproxy/proxy/rules"
)

// TestRouteIndexFindsWhatTheWalkFinds: for random tables of prefix,
// exact, regex and host routes and random requests, the index picks the
// route a walk of the whole table picks, with the same matched length.
func TestRouteIndexFindsWhatTheWalkFinds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/a", "/a/", "/ab", "/A/x", "/api/1/x", "/b%2Fc", "/%25x", "//x", "/x.php", "/X.PHP", "", "/a%2fb", "/s", "/k", "/\u212a"}
	hosts := []string{"", "a.example.com", "A.EXAMPLE.COM", "b.example.com", "x.a.example.com", "c"}
	exprs := []struct {
		re   string
		fold bool
	}{{`^/a`, false}, {`^/A`, true}, {`\.php$`, true}, {`^/api/[0-9]+/`, false}, {`^/k`, true}, {`^/(a|b)`, false}, {`^/b%2F`, false}, {`x`, false}}
	for round := range 300 {
		var routes []Route
		for range 1 + rng.IntN(70) {
			var r Route
			switch rng.IntN(4) {
			case 0:
				r.Path = paths[rng.IntN(len(paths))]
			case 1:
				r.Path, r.Exact = paths[rng.IntN(len(paths))], true
			case 2:
				e := exprs[rng.IntN(len(exprs))]
				r.Regex, _ = rules.CompilePathRegex(e.re, e.fold)
			}
			if rng.IntN(3) == 0 {
				r.Host = []string{"a.example.com", "b.example.com", "*.a.example.com", "c"}[rng.IntN(4)]
			}
			routes = append(routes, r)
		}
		rt := &Router{Routes: routes}
		rt.BuildIndex()
		for _, h := range hosts {
			for _, p := range paths {
				mh := matchHost([]byte(h))
				wantI, wantN, wantOK := -1, 0, false
				for i := range routes {
					if n, ok := routes[i].matchHost(mh, []byte(p)); ok {
						wantI, wantN, wantOK = i, n, true
						break
					}
				}
				i, n, ok := rt.index.first(routes, mh, []byte(p))
				if ok != wantOK || ok && (i != wantI || n != wantN) {
					t.Fatalf("round %d, host %q path %q: index %d %d %v, walk %d %d %v", round, h, p, i, n, ok, wantI, wantN, wantOK)
				}
			}
		}
	}
}
