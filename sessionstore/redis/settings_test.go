package redis

import (
	"reflect"
	"testing"
	"time"

	"sessionproxy/sessionstore"
)

// TestSettingsApply: every setting reaches the store's options.
func TestSettingsApply(t *testing.T) {
	s := &Settings{Addrs: []string{"127.0.0.1:1"}, Username: "u", Password: "p", KeyPrefix: "k:", Timeout: time.Second, WaitReplicas: 2}
	var o sessionstore.Options
	if err := s.Apply(&o); err != nil {
		t.Fatal(err)
	}
	want := sessionstore.RedisOptions{Addrs: s.Addrs, Username: "u", Password: "p", KeyPrefix: "k:", Timeout: time.Second, WaitReplicas: 2}
	if !reflect.DeepEqual(o.Redis, want) {
		t.Fatalf("options %+v, want %+v", o.Redis, want)
	}
}

// TestSettingsCheckWordsTheStoresRules: what Options.Check refuses of
// Redis with write: async is reported at session.write, in the file's
// words; the defaults with sync writes have no problem.
func TestSettingsCheckWordsTheStoresRules(t *testing.T) {
	s := DefaultSettings()
	s.Addrs = []string{"127.0.0.1:1"}
	o := sessionstore.Options{LocalSize: 1 << 20, LocalTTL: sessionstore.AutoTTL}
	s.Apply(&o)
	if ps := s.Check(&o); len(ps) != 0 {
		t.Fatalf("defaults: %+v", ps)
	}
	o.Async = true
	ps := s.Check(&o)
	if len(ps) != 1 || ps[0].Path != "session.write" {
		t.Fatalf("async with client_cache: %+v", ps)
	}
	s.ClientCache, s.WaitReplicas = false, 1
	s.Apply(&o)
	ps = s.Check(&o)
	if len(ps) != 1 || ps[0].Msg != "session.write: async answers a write before it reaches redis, which session.redis.wait_replicas rules out: use sync, or wait_replicas: 0" {
		t.Fatalf("async with wait_replicas: %+v", ps)
	}
}
