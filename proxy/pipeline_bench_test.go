package proxy

import "testing"

// BenchmarkProxyPipeline is the A/B of pipeline: the plain request and
// the session read over a loopback TCP backend, one request per backend
// connection at a time (off) or up to 8 in flight on one (8), from 16
// clients per core, so that requests are there to be pipelined.
func BenchmarkProxyPipeline(b *testing.B) {
	for _, tc := range []struct {
		name     string
		path     string
		session  bool
		pipeline int
	}{
		{"plain/pipeline=off", "/plain", false, 0},
		{"plain/pipeline=8", "/plain", false, 8},
		{"read/pipeline=off", "/read", true, 0},
		{"read/pipeline=8", "/read", true, 8},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var s *Sessions
			if tc.session {
				s = embeddedSessions(b)
			}
			c := benchProxyPipelined(b, s, true, tc.pipeline)
			b.SetParallelism(16)
			runBench(b, c, tc.path, tc.session)
		})
	}
}
