package memcached

import (
	"sync"
	"time"

	"sessionproxy/internal/memcache"
)

// startProbe is each node's first look, taken before the store's first
// presence round and before any traffic: whether the node answers when
// this process starts, and its stats if it does.
//
// A node found away at start is marked down, and one never seen is
// caught up in full when it answers (monitor): what it holds is unknown.
// One slow answer must not do that to a healthy node. A process that
// has just started on a loaded machine, with another node frozen beside
// it, took more than the operation timeout (100 ms) for a stats exchange
// on a fresh connection, and counted two healthy nodes of three down:
// with the third frozen, it saw no replica up and kept sessions in its
// hot tier while the other proxies, which saw those nodes up, gave the
// same clients fresh sessions (docs/guarantees.md, finding A). So the
// first probe is tried again, on a fresh connection each time and with
// a timeout that doubles, for up to one probe interval (the running
// monitor's own pace), and only a node that answered none of the tries
// is away. The nodes are probed all at once: a frozen one costs the
// start one interval, never the others their state.
func (m *Memcached) startProbe() []startProbeResult {
	res := make([]startProbeResult, len(m.nodes))
	var wg sync.WaitGroup
	for i, n := range m.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].stats, res[i].err = probeAtStart(n.Addr, m.opts.Timeout, max(m.opts.ProbeInterval, m.opts.Timeout))
		}()
	}
	wg.Wait()
	for i, n := range m.nodes {
		if res[i].err != nil {
			// Away when this process started: what it holds is unknown
			// until it returns and catches up in full.
			m.markDown(n, res[i].err)
		}
	}
	return res
}

// startProbeResult is one node's first probe: its stats, or why it did
// not answer.
type startProbeResult struct {
	stats memcache.Stats
	err   error
}

// probeAtStart reads the stats of the server at addr, trying again after
// a failure with twice the timeout, until one try answers or budget is
// spent. It returns the last try's error.
func probeAtStart(addr string, timeout, budget time.Duration) (memcache.Stats, error) {
	deadline := time.Now().Add(budget)
	base := timeout
	for {
		start := time.Now()
		st, err := memcache.ReadStats(addr, timeout)
		if err == nil {
			return st, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return st, err
		}
		// A refused connection answers at once: wait out what the try
		// did not take, so that a node that is restarting has the
		// budget to come up in, not a burst of refused dials.
		if took := time.Since(start); took < timeout {
			time.Sleep(min(timeout-took, left))
		}
		if time.Until(deadline) <= 0 {
			return st, err
		}
		timeout = max(min(2*timeout, time.Until(deadline)), base)
	}
}
