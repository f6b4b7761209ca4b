package membudget

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	var zero Budget
	if got := zero.Limit(); got != Allowance {
		t.Errorf("zero Budget: %d, want the allowance %d", got, Allowance)
	}
	conns := 10
	b := Budget{HotTier: 64 << 20, PerRequest: 128 << 10, Conns: func() int { return conns }}
	if got, want := b.Limit(), int64(64<<20+Allowance+10*(PerConn+128<<10)); got != want {
		t.Errorf("Limit = %d, want %d", got, want)
	}
	conns = 1000
	if got, want := b.Limit(), int64(64<<20+Allowance+1000*(PerConn+128<<10)); got != want {
		t.Errorf("Limit with 1000 connections = %d, want %d", got, want)
	}
}

// limit reads the runtime's soft memory limit.
func limit() int64 { return debug.SetMemoryLimit(-1) }

// TestRunFollowsConnections: the limit follows the open connections while
// Run runs, and is lifted when it ends.
func TestRunFollowsConnections(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // the test's own environment must not turn it off
	defer debug.SetMemoryLimit(limit())
	var conns atomic.Int64
	b := &Budget{HotTier: 1 << 30, Conns: func() int { return int(conns.Load()) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, 5*time.Millisecond, func() *Budget { return b }); close(done) }()
	waitLimit(t, 1<<30+Allowance)
	conns.Store(100)
	waitLimit(t, 1<<30+Allowance+100*PerConn)
	cancel()
	<-done
	if got := limit(); got != math.MaxInt64 {
		t.Fatalf("limit after Run = %d, want none", got)
	}
}

// TestOperatorLimitStands: GOMEMLIMIT set by the operator is left alone.
func TestOperatorLimitStands(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "3GiB")
	defer debug.SetMemoryLimit(limit())
	debug.SetMemoryLimit(3 << 30)
	Apply(&Budget{HotTier: 1 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Run(ctx, time.Millisecond, func() *Budget { return &Budget{} })
	if got := limit(); got != 3<<30 {
		t.Fatalf("limit = %d, want the operator's %d", got, int64(3<<30))
	}
}

func waitLimit(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for limit() != want {
		if time.Now().After(deadline) {
			t.Fatalf("limit = %d, want %d", limit(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLimitGivesWayToLiveHeap: a budget below what is live would keep the
// collector running for nothing; the limit stays half the allowance above
// the live heap instead.
func TestLimitGivesWayToLiveHeap(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(limit())
	live := make([]byte, 3*Allowance)
	runtime.GC()
	Apply(&Budget{})
	if got, want := limit(), int64(len(live)+Allowance/2); got < want {
		t.Fatalf("limit %d MiB with %d MiB live, want at least %d MiB", got>>20, len(live)>>20, want>>20)
	}
	runtime.KeepAlive(live)
}
