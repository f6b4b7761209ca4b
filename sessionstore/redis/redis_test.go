package redis

import (
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/redistest"
	"sessionproxy/sessionstore"
)

// Importing the package registers it: sessionstore.New builds a Redis
// store for options that name Redis addresses, with Redis's own defaults,
// and sessions written through it are on the server.
func TestNewBuildsTheRegisteredStore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := sessionstore.New(sessionstore.Options{Redis: sessionstore.RedisOptions{Addrs: []string{srv.Addr}, Timeout: time.Second, ClientCache: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Kind() != sessionstore.KindRedis || !s.FindsServers() || s.ConfiguredNodes() != nil || len(s.Nodes()) != 1 {
		t.Fatalf("kind %q, finds servers %v, configured nodes %v, nodes %v: want redis, its one server found",
			s.Kind(), s.FindsServers(), s.ConfiguredNodes(), s.Nodes())
	}
	r, err := New(sessionstore.RedisOptions{Addrs: []string{srv.Addr}, ClientCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.opts.KeyPrefix != sessionstore.DefaultRedisKeyPrefix || r.opts.Timeout != sessionstore.DefaultRedisTimeout ||
		r.opts.ProbeInterval != sessionstore.DefaultRedisProbeInterval {
		t.Fatalf("defaults %+v", r.opts)
	}
	id := sessionstore.AppendNewID(nil)
	var sess sessionstore.Session
	sess.ID, sess.Version, sess.Expires = id, 1, time.Now().Add(time.Hour).Unix()
	if err := r.Put(id, sess.AppendEncode(nil)); err != nil {
		t.Fatal(err)
	}
	if out, err := srv.CLI("EXISTS", sessionstore.DefaultRedisKeyPrefix+string(id)); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("EXISTS after Put: %q %v", out, err)
	}
}
