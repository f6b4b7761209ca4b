package sessionstore

import (
	"sync"
	"testing"
	"time"
)

// TestEachNodeRunsAllAtOnce: every node's call runs, with its own index,
// and they overlap: each waits until all have started, which a loop over
// the nodes one after the other would never reach.
func TestEachNodeRunsAllAtOnce(t *testing.T) {
	for _, count := range []int{0, 1, 2, 3} {
		nodes := make([]*node, count)
		for i := range nodes {
			nodes[i] = &node{}
		}
		var started sync.WaitGroup
		started.Add(count)
		all := make(chan struct{})
		go func() { started.Wait(); close(all) }()
		seen := make([]*node, count)
		done := make(chan struct{})
		go func() {
			eachNode(nodes, func(i int, n *node) {
				seen[i] = n
				started.Done()
				<-all
			})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d nodes: the calls did not all run at once", count)
		}
		for i := range nodes {
			if seen[i] != nodes[i] {
				t.Errorf("%d nodes: call %d got the wrong node", count, i)
			}
		}
	}
}
