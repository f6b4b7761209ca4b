package memcached

import (
	"net"
	"slices"
	"strings"
	"testing"

	"sessionproxy/internal/memcachedtest"

	"sessionproxy/sessionstore"
)

// A node's listing hands on the keys of this store's sessions only (its
// prefix and a valid ID), not another application's keys, presence marks
// or a key with the prefix and no ID; its errors name the node.
func TestListingHandsOnOnlySessionKeys(t *testing.T) {
	srv := memcachedtest.Start(t)
	var want []string
	l := newRawLoader(t, srv.Addr)
	for range 3 {
		k := sessionKey()
		want = append(want, k)
		l.set(k, []byte("v"))
	}
	for _, k := range []string{"other:x", sessionstore.DefaultKeyPrefix + "short", sessionstore.DefaultKeyPrefix + "proxies", "x" + sessionKey()} {
		l.set(k, []byte("v"))
	}
	l.done()
	m := idleMemcached(t, 1, sessionstore.Node{ID: "a", Addr: srv.Addr})
	var got []string
	if err := m.eachKey(m.nodes[0], func(k []byte) error { got = append(got, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %q, want %q", got, want)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	gone := idleMemcached(t, 1, sessionstore.Node{ID: "gone", Addr: addr})
	err = gone.eachKey(gone.nodes[0], func([]byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "listing keys of gone") {
		t.Fatalf("listing a node that refuses: %v, want an error naming it", err)
	}
}

func sessionKey() string {
	return sessionstore.DefaultKeyPrefix + string(sessionstore.AppendNewID(nil))
}
