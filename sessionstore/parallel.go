package sessionstore

import "sync"

// eachNode calls fn for every node, the first in the caller's goroutine
// and the others each in one of their own, and returns once all are done:
// a request waits for its slowest replica instead of the sum of their
// round trips. fn must be safe for concurrent use and write only to its
// own index i.
func eachNode(nodes []*node, fn func(i int, n *node)) {
	switch len(nodes) {
	case 0:
		return
	case 1:
		fn(0, nodes[0])
		return
	}
	var wg sync.WaitGroup
	for i, n := range nodes[1:] {
		wg.Go(func() { fn(i+1, n) })
	}
	fn(0, nodes[0])
	wg.Wait()
}
