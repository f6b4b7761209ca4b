package config

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"sessionproxy/sessionstore"
	"sessionproxy/sessionstore/memcached"
	"sessionproxy/sessionstore/redis"
)

// The store kinds register themselves when their packages are imported;
// config's tests import the two the product has, and config itself neither.

func memcachedOf(c *Config) *memcached.Settings {
	return c.Session.Stores[sessionstore.KindMemcached].(*memcached.Settings)
}

func redisOf(c *Config) *redis.Settings {
	return c.Session.Stores[sessionstore.KindRedis].(*redis.Settings)
}

func TestRedisDefaultsAndValues(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  local_cache: {size: 0}\n  redis:\n    addrs: ['127.0.0.1:7000', '127.0.0.1:7001']\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := redisOf(c)
	if len(r.Addrs) != 2 || r.KeyPrefix != "sp:" || r.Timeout != 100*time.Millisecond || !r.ClientCache || r.WaitReplicas != 0 {
		t.Fatalf("redis defaults %+v", r)
	}
	c, err = Load([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  redis:\n    addrs: ['r:6379']\n    username: u\n    password: p\n    key_prefix: 'app:'\n    timeout: 250ms\n    wait_replicas: 1\n    client_cache: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	r = redisOf(c)
	if r.Username != "u" || r.Password != "p" || r.KeyPrefix != "app:" || r.Timeout != 250*time.Millisecond || r.WaitReplicas != 1 || r.ClientCache {
		t.Fatalf("redis values %+v", r)
	}
}

// TestStoreDefaultsAreTheStores: a file without store sections holds each
// kind's own defaults, in a value of its own per Config (a flag that sets
// one configuration's nodes leaves the next alone).
func TestStoreDefaultsAreTheStores(t *testing.T) {
	a, b := Default(), Default()
	if !reflect.DeepEqual(memcachedOf(a), memcached.DefaultSettings()) || !reflect.DeepEqual(redisOf(a), redis.DefaultSettings()) {
		t.Fatalf("defaults: %+v %+v", memcachedOf(a), redisOf(a))
	}
	memcachedOf(a).Nodes = []string{"127.0.0.1:1"}
	if memcachedOf(b).Nodes != nil {
		t.Fatal("two Configs share their store settings")
	}
	c, err := Parse([]byte("session:\n  memcached:\n  redis: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Session.Stores, b.Session.Stores) {
		t.Fatalf("empty sections: %+v, want the defaults", c.Session.Stores)
	}
}

// TestStoreSectionTypeErrors: a section that is not a mapping, or a value
// of the wrong type, is reported as when config declared the sections.
func TestStoreSectionTypeErrors(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"session:\n  redis: 5\n", "line 2: wrong type: cannot read !!int `5` into config.Redis"},
		{"session:\n  memcached: [a]\n", "line 2: wrong type: cannot read !!seq into config.Memcached"},
		{"session: 5\n", "line 1: wrong type: cannot read !!int `5` into config.Session"},
		{"session:\n  redis:\n    timeout: 2 seconds\n", `line 3: invalid duration "2 seconds" (use Go syntax such as 100ms, 2s, 30m)`},
		{"session:\n  redis:\n    timeout: -1s\n", `line 3: negative duration "-1s"`},
		{"session:\n  memcached:\n    bogus: 1\n    nodes: 5\n  cokie: x\n", "line 3: unknown key \"bogus\"\nline 4: wrong type: cannot read !!int `5` into []string\nline 5: unknown key \"cokie\""},
	} {
		_, err := Parse([]byte(tt.text))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v, want %q", tt.text, err, tt.want)
		}
	}
	c, err := Parse([]byte("session:\n  redis:\n    timeout: 0\n"))
	if err != nil || redisOf(c).Timeout != 0 {
		t.Fatalf("a bare 0: %v", err)
	}
}

// testKind is a kind of store only config's tests know: config decodes and
// checks it as it does the product's, without naming it.
type testKind struct {
	Servers []string      `yaml:"servers"`
	Wait    time.Duration `yaml:"wait"`
	Deep    struct {
		Waits []time.Duration `yaml:"waits"`
	} `yaml:"deep"`
	hidden int // YAML never sets it; it survives decoding
}

func (k *testKind) InUse() bool { return len(k.Servers) > 0 }

func (k *testKind) Check(o *sessionstore.Options) []sessionstore.Problem {
	if k.Wait > time.Minute {
		return []sessionstore.Problem{sessionstore.Problemf("session.zstore.wait", "session.zstore.wait is over a minute")}
	}
	return nil
}

func (k *testKind) Apply(o *sessionstore.Options) error { return nil }

func init() {
	sessionstore.RegisterKind(sessionstore.Kind{Name: "zstore", Key: "servers", Settings: func() sessionstore.Settings {
		return &testKind{Wait: time.Second, hidden: 7}
	}})
}

func TestStoreKindsAreAsked(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  zstore:\n    servers: [x]\n    deep:\n      waits: [1s, 0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Session.Stores["zstore"].(*testKind)
	if k.Wait != time.Second || k.hidden != 7 || !reflect.DeepEqual(k.Deep.Waits, []time.Duration{time.Second, 0}) {
		t.Fatalf("zstore %+v", k)
	}
	// Each text follows a backends line: its first line is line 2.
	for _, tt := range []struct{ text, want string }{
		{"session:\n  zstore:\n    servers: [x]\n    wait: 2m\n", "line 5: session.zstore.wait is over a minute"},
		{"session:\n  zstore:\n    servers: [x]\n  memcached:\n    nodes: ['127.0.0.1:1']\n  redis:\n    addrs: ['127.0.0.1:2']\n",
			"line 4: session.zstore.servers and session.memcached.nodes exclude each other: choose one shared store\n" +
				"line 8: session.redis.addrs and session.memcached.nodes exclude each other: choose one shared store"},
		{"session:\n  zstore:\n    sevrers: [x]\n", `line 4: unknown key "sevrers"`},
		{"session:\n  zstore:\n    deep: {waits: [1 s]}\n", `line 4: invalid duration "1 s" (use Go syntax such as 100ms, 2s, 30m)`},
	} {
		_, err := Load([]byte("backends: [{url: 'http://a:1'}]\n" + tt.text))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v, want %q", tt.text, err, tt.want)
		}
	}
}

// TestNowhereNamesTheDefaultKind: with no hot tier and no store in use,
// the message names what the default kind lacks.
func TestNowhereNamesTheDefaultKind(t *testing.T) {
	_, err := Load([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  local_cache: {size: 0}\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Error() != "line 3: session.local_cache.size is 0 and there are no memcached nodes: sessions would be kept nowhere" {
		t.Fatalf("error %v", err)
	}
}

// TestAsyncNeedsLocalAlone: with write: async refused and two stores in
// use, each problem is one message of its own (the write mode's was
// both, joined by a newline, before).
func TestAsyncNeedsLocalAlone(t *testing.T) {
	got := errorLines(t, "backends: [{url: 'http://a:1'}]\nsession:\n  write: async\n  local_cache: {ttl: 5s}\n  memcached: {nodes: ['127.0.0.1:1']}\n  redis: {addrs: ['127.0.0.1:2'], client_cache: false}\n")
	want := []string{
		"line 3: session.write: async writes need the hot tier as the authoritative copy (local_cache.size above 0 and local_cache.ttl: 0 or auto)",
		"line 6: session.redis.addrs and session.memcached.nodes exclude each other: choose one shared store",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors %q\nwant %q", got, want)
	}
}

// TestStoresEqual: a reload keeps its store when the sections say the
// same, an empty list as none.
func TestStoresEqual(t *testing.T) {
	parse := func(text string) Stores {
		t.Helper()
		c, err := Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return c.Session.Stores
	}
	none := parse("listen: ':1'\n")
	if !none.Equal(parse("session:\n  redis: {addrs: []}\n")) {
		t.Fatal("an empty list differs from none")
	}
	if none.Equal(parse("session:\n  redis: {addrs: ['127.0.0.1:1']}\n")) || none.Equal(parse("session:\n  memcached: {timeout: 1s}\n")) {
		t.Fatal("different sections are equal")
	}
}
