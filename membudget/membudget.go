// Package membudget keeps the proxy's Go memory within what its
// configuration accounts for: the hot tier, a fixed allowance and a cost
// per open connection.
//
// The hot tier is one large, long-lived and pointer-free part of the heap.
// Left to GOGC alone, the runtime lets the heap grow to twice what is live
// before it collects, so any stream of short-lived garbage (a cold read of
// a large session, the start-up copy between memcached nodes) can take
// the process to about twice the hot tier. A soft memory limit makes the
// collector run before that instead; because the tier holds no pointers,
// collecting more often costs little.
package membudget

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Allowance is the memory the limit grants besides the hot tier and the
// connections: the runtime, buffers, pools and the garbage between two
// collections. It is below the 64 MiB that the proxy promises on top of
// the hot tier, leaving room for what the limit does not count (the
// program's own code and data).
const Allowance = 40 << 20

// PerConn is what the limit grants each open connection besides the
// sessions it carries: its goroutine stack, read buffer and request
// context (about 29 KiB measured on a busy connection).
const PerConn = 32 << 10

// A Budget sets the runtime's soft memory limit from the configuration
// and the open connections. Its zero value has no hot tier and counts no
// connections.
type Budget struct {
	HotTier    int64      // bytes of the hot tier
	PerRequest int64      // bytes a request may hold besides PerConn: sessions in its headers, a buffered body
	Conns      func() int // open client connections; nil: none
}

// Limit is the soft memory limit for the open connections now.
func (b *Budget) Limit() int64 {
	conns := 0
	if b.Conns != nil {
		conns = b.Conns()
	}
	return b.HotTier + Allowance + int64(conns)*(PerConn+b.PerRequest)
}

// Operated reports whether the operator set GOMEMLIMIT, whose limit then
// stands: the budget sets none.
func Operated() bool { return os.Getenv("GOMEMLIMIT") != "" }

// Apply sets the runtime's soft memory limit to b's, unless the operator
// set one. A limit below what is live would have the collector run
// without pause (up to half the CPU) for nothing: the limit never goes
// below the heap that was live at the last collection plus half the
// allowance.
func Apply(b *Budget) {
	if !Operated() {
		debug.SetMemoryLimit(max(b.Limit(), liveHeap()+Allowance/2))
	}
}

var liveSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
var liveMu sync.Mutex

// liveHeap is the heap that was live at the last collection.
func liveHeap() int64 {
	liveMu.Lock()
	defer liveMu.Unlock()
	metrics.Read(liveSample)
	if liveSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(liveSample[0].Value.Uint64())
}

// Run applies the budget returned by current every interval until ctx
// ends, so that the limit follows the connections (and a reloaded
// configuration), and then lifts the limit.
func Run(ctx context.Context, interval time.Duration, current func() *Budget) {
	if Operated() {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		Apply(current())
		select {
		case <-ctx.Done():
			debug.SetMemoryLimit(math.MaxInt64) // the runtime's default: none
			return
		case <-t.C:
		}
	}
}
