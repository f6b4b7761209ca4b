package sessionstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Asynchronous writes need a trusted hot tier: Redis without client-side
// caching.
func testAsyncReadYourWrites(t *testing.T, e *storeEnv) {
	s := e.uncached(t, Options{LocalSize: 1 << 20, Async: true})
	if s.async == nil {
		t.Fatal("async not enabled")
	}
	id := AppendNewID(nil)
	set(t, s, id, true, "a", "1")
	set(t, s, id, false, "b", "2")
	mustLoad(t, s, id, "a=1,b=2") // at once, from the local tier
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, e.store(t, Options{}), id, "a=1,b=2")
	if written, _ := s.AsyncStats(); written == 0 {
		t.Fatal("no write went through the queue")
	}
}

func testAsyncQueueFullWritesInline(t *testing.T, e *storeEnv) {
	s := e.uncached(t, Options{LocalSize: 4 << 20, Async: true, AsyncQueue: 1})
	ids := make([][]byte, 300)
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(ids); i += 6 {
				id := AppendNewID(nil)
				ids[i] = id
				var u Update
				u.Set([]byte("n"), []byte(fmt.Sprint(i)))
				if err := s.change(id, &u, true, nil, nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, inline := s.AsyncStats(); inline == 0 {
		t.Fatal("a queue of 1 never overflowed into an inline write")
	}
	fresh := e.store(t, Options{})
	for i, id := range ids {
		mustLoad(t, fresh, id, fmt.Sprintf("n=%d", i))
	}
}

func testAsyncNewerNeverOverwrittenByOlder(t *testing.T, e *storeEnv) {
	s := e.uncached(t, Options{LocalSize: 1 << 20, Async: true})
	id := AppendNewID(nil)
	set(t, s, id, true, "v", "0")
	for i := 1; i <= 50; i++ {
		set(t, s, id, false, "v", fmt.Sprint(i))
	}
	s.Flush(context.Background())
	mustLoad(t, e.store(t, Options{}), id, "v=50")
}
