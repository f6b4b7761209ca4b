package sessionstore

import (
	"strconv"
	"testing"

	"sessionproxy/internal/memcachedtest"
)

// BenchmarkCommitPrincipal compares, in one run, a request's write path
// with the principal index off and on, over two real memcached nodes:
//
//   - off/write and on/write: a backend changes an attribute of a session
//     that holds a principal; with the index on nothing more is written
//     (the index changes only when the principal does), so the two should
//     match, at 0 allocs/op with the index off.
//   - off/login and on/login: each request starts a session that sets the
//     principal (a login); the difference is the cost of one index update
//     (a compare-and-swap of the principal's index on both replicas).
//
// Run: go test -run '^$' -bench CommitPrincipal -benchmem ./sessionstore/
func BenchmarkCommitPrincipal(b *testing.B) {
	for _, on := range []bool{false, true} {
		// Fresh nodes for each: the other's presence mark would make this
		// one take it for another proxy.
		n1, n2 := memcachedtest.Start(b), memcachedtest.Start(b)
		name := "off"
		o := Options{
			Memcached: MemcachedOptions{Nodes: []Node{{ID: "n1", Addr: n1.Addr}, {ID: "n2", Addr: n2.Addr}}},
			LocalSize: 16 << 20,
		}
		if on {
			name = "on"
			o.Principal = PrincipalOptions{Attr: "user"}
		}
		s, err := New(o)
		if err != nil {
			b.Fatal(err)
		}
		id := commit(b, s, "", false, false, "user", `"ann"`)
		b.Run(name+"/write", func(b *testing.B) {
			var r Request
			cookie, name, v := []byte(id), []byte("visits"), []byte("12")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := s.Open(&r, cookie); err != nil {
					b.Fatal(err)
				}
				r.Change.Set(name, v)
				if _, _, err := s.Commit(&r); err != nil {
					b.Fatal(err)
				}
			}
		})
		{
			users := make([][]byte, 1024)
			for i := range users {
				users[i] = strconv.AppendInt([]byte("user"), int64(i), 10)
			}
			b.Run(name+"/login", func(b *testing.B) {
				var r Request
				name := []byte("user")
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if err := s.Open(&r, nil); err != nil {
						b.Fatal(err)
					}
					r.Change.Set(name, users[i%len(users)])
					if _, _, err := s.Commit(&r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		s.Close()
	}
}
