package proxy

import "testing"

// BenchmarkProxyPlainTCPPipelined is BenchmarkProxyPlainTCP with up to 8
// requests in flight per backend connection: the A/B of pipeline.
func BenchmarkProxyPlainTCPPipelined(b *testing.B) {
	runBench(b, benchProxyPipelined(b, nil, true, 8), "/plain", false)
}

// BenchmarkProxySessionReadTCP is BenchmarkProxySessionRead with the
// backend on loopback TCP, the baseline of its pipelined variant.
func BenchmarkProxySessionReadTCP(b *testing.B) {
	runBench(b, benchProxyPipelined(b, embeddedSessions(b), true, 0), "/read", true)
}

// BenchmarkProxySessionReadTCPPipelined is BenchmarkProxySessionReadTCP
// pipelined 8 deep.
func BenchmarkProxySessionReadTCPPipelined(b *testing.B) {
	runBench(b, benchProxyPipelined(b, embeddedSessions(b), true, 8), "/read", true)
}
