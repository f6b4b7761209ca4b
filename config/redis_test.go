package config

import (
	"testing"
	"time"
)

func TestRedisDefaultsAndValues(t *testing.T) {
	c, err := Load([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  local_cache: {size: 0}\n  redis:\n    addrs: ['127.0.0.1:7000', '127.0.0.1:7001']\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Session.Redis
	if len(r.Addrs) != 2 || r.KeyPrefix != "sp:" || r.Timeout.Std() != 100*time.Millisecond || !r.ClientCache || r.WaitReplicas != 0 {
		t.Fatalf("redis defaults %+v", r)
	}
	c, err = Load([]byte("backends: [{url: 'http://a:1'}]\nsession:\n  redis:\n    addrs: ['r:6379']\n    username: u\n    password: p\n    key_prefix: 'app:'\n    timeout: 250ms\n    wait_replicas: 1\n    client_cache: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	r = c.Session.Redis
	if r.Username != "u" || r.Password != "p" || r.KeyPrefix != "app:" || r.Timeout.Std() != 250*time.Millisecond || r.WaitReplicas != 1 || r.ClientCache {
		t.Fatalf("redis values %+v", r)
	}
}
