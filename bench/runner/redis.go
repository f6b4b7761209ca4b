package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The Redis rows: the session scenarios again with Redis as the shared
// store, measured in the same rounds as the memcached ones so that the
// two compare within one run. One redis-server master (AOF, fsync every
// second: the persistence docs/stores.md recommends) with one replica, and
// three sessionproxy instances over it.

// redisTarget is the Target of the Redis rows in the table.
const redisTarget = "sessionproxy redis"

var redisBench = flag.Bool("redis", true, "also measure sessionproxy over Redis (redis.go)")

// redisScenarios share the names of the memcached scenarios they repeat,
// so that rows of the same number compare.
var redisScenarios = []scenario{
	{"2 session read (local hit)", "/read", "redis-hot"},
	{"3 session write (sync)", "/write", "redis-hot"},
	{"3c session write (sync, wait_replicas 1)", "/write", "redis-wait"},
	{"4 cold read (no local tier)", "/read", "redis-cold"},
}

// redisConfig is a sessionproxy instance over Redis with client-side
// caching: local is the hot tier's size ("0": none), wait the replicas
// each write waits for.
func redisConfig(addr, local string, wait int, backends []string, redis string) string {
	return proxyConfig(addr, "sync", local, backends, fmt.Sprintf(`  redis:
    addrs: [%q]
    timeout: 1s
    wait_replicas: %d
    client_cache: true
`, redis, wait))
}

// startRedis starts the master, its replica and the Redis instances of
// sessionproxy.
func (e *env) startRedis() {
	if !*redisBench {
		return
	}
	master := e.redisServer("redis-master", "--appendonly", "yes", "--appendfsync", "everysec")
	_, port, _ := strings.Cut(master, ":")
	replica := e.redisServer("redis-replica", "--replicaof", "127.0.0.1", port)
	waitReplica(replica)
	sp := filepath.Join(e.dir, "sessionproxy")
	for _, t := range []struct {
		name, local string
		wait        int
	}{{"redis-hot", hotTier, 0}, {"redis-wait", hotTier, 1}, {"redis-cold", "0", 0}} {
		addr := freeAddr()
		conf := filepath.Join(e.dir, t.name+".yaml")
		os.WriteFile(conf, []byte(redisConfig(addr, t.local, t.wait, e.backend, master)), 0o600)
		e.meter(addr, e.spawnPid(sp, "run", "-config", conf), append(append([]int{}, e.backendPgids...), e.redisPgids...)...)
		e.sp[t.name] = addr
	}
	for _, s := range redisScenarios {
		waitListening(e.sp[s.Target])
	}
}

// redisServer starts a redis-server without snapshots on a free port, in
// a directory of its own, and returns its address.
func (e *env) redisServer(name string, args ...string) string {
	addr := freeAddr()
	_, port, _ := strings.Cut(addr, ":")
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	base := []string{"--bind", "127.0.0.1", "--port", port, "--dir", dir, "--save", "",
		"--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"}
	cmd, err := e.spawnLog(name, "redis-server", append(base, args...)...)
	if err != nil {
		log.Fatal(err)
	}
	e.redisPgids = append(e.redisPgids, cmd.Process.Pid)
	waitListening(addr)
	return addr
}

// waitReplica waits until the replica at addr has synced with its master:
// before that, writes with wait_replicas 1 would fail.
func waitReplica(addr string) {
	_, port, _ := strings.Cut(addr, ":")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", port, "INFO", "replication").Output()
		if strings.Contains(string(out), "master_link_status:up") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("redis replica %s did not sync with its master", addr)
}

func (e *env) warmRedis() {
	if !*redisBench {
		return
	}
	for _, s := range redisScenarios {
		e.wrk(e.sp[s.Target], s.Path, 2*time.Second)
	}
}

// redisRound measures every Redis scenario once.
func (e *env) redisRound(add func(string, result)) {
	if !*redisBench {
		return
	}
	for _, s := range redisScenarios {
		add(redisTarget+"|"+s.Name, e.wrk(e.sp[s.Target], s.Path, *duration))
	}
}

// redisRows are the Redis rows of the table, in redisScenarios' order.
func redisRows(runs map[string][]result) []row {
	var rows []row
	for _, s := range redisScenarios {
		if rs := runs[redisTarget+"|"+s.Name]; len(rs) > 0 {
			rows = append(rows, summarize(redisTarget, s.Name, rs))
		}
	}
	return rows
}
