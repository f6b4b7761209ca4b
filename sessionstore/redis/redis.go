// Package redis keeps sessions on Redis or a Redis Cluster: the shared
// store behind sessionstore.Options.Redis. Importing it registers it with
// sessionstore (sessionstore.RegisterKind, settings.go): config then reads
// the session.redis section, and sessionstore.New builds the store for
// options that name Redis addresses.
package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"sessionproxy/sessionstore"
)

// Store keeps each session as one string key on a standalone Redis server
// or a Redis Cluster, written with small Lua scripts that compare the
// version the value carries, so that a writer never replaces a newer copy
// and concurrent writers of one session (in this process or others) retry
// on the newest copy instead of losing a change. Replication and failover
// are the deployment's own: the store talks to the masters and leaves
// replicas to Redis. Safe for concurrent use by multiple goroutines.
type Store struct {
	opts sessionstore.RedisOptions

	client atomic.Pointer[rueidis.Client] // nil until the first connection succeeds

	// onInval is the Store's hook for keys another writer changed; nil
	// until Watch. A nil id means every key (a connection was lost).
	onInval atomic.Pointer[func(id []byte)]

	peers sessionstore.PeerCount // other processes with presence marks (without ClientCache)

	mu      sync.Mutex           // protects servers
	servers map[string]*redisSrv // every server seen, by address

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// redisSrv is one Redis server's last probe.
type redisSrv struct {
	addr  string
	up    bool
	known bool // probed at least once: changes from here on are logged
}

var (
	_ sessionstore.Shared       = (*Store)(nil)
	_ sessionstore.Invalidator  = (*Store)(nil)
	_ sessionstore.ServerFinder = (*Store)(nil)
)

// New returns a store over o.Addrs. It does not wait for a server:
// until one answers, reads and writes fail with sessionstore.ErrUnavailable and a
// background loop keeps trying, as memcached nodes that are down at start
// are probed until they return.
func New(o sessionstore.RedisOptions) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("sessionstore: no redis addresses")
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = sessionstore.DefaultRedisKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = sessionstore.DefaultRedisTimeout
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = sessionstore.DefaultRedisProbeInterval
	}
	if o.InstanceID == "" {
		o.InstanceID = sessionstore.NewInstanceID()
	}
	if !sessionstore.ValidInstanceID(o.InstanceID) {
		return nil, fmt.Errorf("sessionstore: instance ID %q: 1 to %d of [0-9A-Za-z_-]", o.InstanceID, sessionstore.MaxInstanceID)
	}
	r := &Store{opts: o, servers: map[string]*redisSrv{}, closed: make(chan struct{})}
	for _, a := range o.Addrs {
		r.servers[a] = &redisSrv{addr: a}
	}
	if err := r.connect(); err != nil {
		r.logger().Warn("redis is not answering; sessions cannot be loaded until it does", "addrs", o.Addrs, "err", err)
	} else if r.presence() > 0 {
		// Before the store is handed out, as on memcached; the others'
		// interval is taken to be this one's (the marks do not say it).
		wait := sessionstore.SeenBy(r.opts.ProbeInterval)
		r.logger().Info("other proxies on redis: waiting until they see this one", "wait", wait)
		time.Sleep(wait)
	}
	r.wg.Add(1)
	go r.monitor()
	return r, nil
}

func (r *Store) logger() *slog.Logger {
	if r.opts.Logger == nil {
		return slog.Default()
	}
	return r.opts.Logger
}

// connect builds the client, once.
func (r *Store) connect() error {
	if r.client.Load() != nil {
		return nil
	}
	o := rueidis.ClientOption{
		InitAddress:      r.opts.Addrs,
		Username:         r.opts.Username,
		Password:         r.opts.Password,
		Dialer:           net.Dialer{Timeout: r.opts.Timeout, KeepAlive: time.Second},
		ConnWriteTimeout: max(r.opts.Timeout, time.Second),
		DisableCache:     !r.opts.ClientCache,
		// The hot tier is the cache; rueidis' own would hold a second
		// copy. Broadcast tracking over the key prefix makes the servers
		// report every change of a session key, read through this
		// process or not, so nothing needs to be opted in per read.
		CacheSizeEachConn: 1 << 16,
		ClientName:        "sessionproxy",
	}
	if r.opts.ClientCache {
		o.ClientTrackingOptions = []string{"BCAST", "PREFIX", r.opts.KeyPrefix}
		o.OnInvalidations = r.invalidated
	}
	c, err := rueidis.NewClient(o)
	if err != nil {
		return err
	}
	if !r.client.CompareAndSwap(nil, &c) {
		c.Close()
	}
	return nil
}

// invalidated receives the servers' invalidation pushes: the keys changed,
// or nil when a connection closed (its tracking, and what it would have
// reported, are gone).
func (r *Store) invalidated(keys []rueidis.RedisMessage) {
	fn := r.onInval.Load()
	if fn == nil {
		return
	}
	if keys == nil {
		(*fn)(nil)
		return
	}
	p := len(r.opts.KeyPrefix)
	for _, k := range keys {
		s, err := k.ToString()
		if err != nil || len(s) <= p {
			continue
		}
		(*fn)([]byte(s[p:]))
	}
}

// Watch has fn called with the ID of every session whose key changes on
// the servers, by any writer, and with nil when changes may have gone
// unreported. It reports whether it will: only with ClientCache.
func (r *Store) Watch(fn func(id []byte)) bool {
	if !r.opts.ClientCache {
		return false
	}
	r.onInval.Store(&fn)
	return true
}

// Kind returns "redis".
func (r *Store) Kind() string { return sessionstore.KindRedis }

// FindsServers is true: Status lists the servers the client knows, by
// address (a Cluster's promoted replica joins the list).
func (r *Store) FindsServers() bool { return true }

// Close stops the monitor and closes the connections.
func (r *Store) Close() {
	r.closeOnce.Do(func() {
		close(r.closed)
		if c := r.client.Load(); c != nil {
			(*c).Close()
		}
	})
	r.wg.Wait()
}

// Status reports every server seen (the configured addresses and, on a
// Cluster, each node the slot map named since), sorted by address. A
// server that went away stays listed as down.
func (r *Store) Status() []sessionstore.NodeState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]sessionstore.NodeState, 0, len(r.servers))
	for _, s := range r.servers {
		st := sessionstore.StateDown
		if s.up {
			st = sessionstore.StateUp
		}
		out = append(out, sessionstore.NodeState{Node: sessionstore.Node{ID: s.addr, Addr: s.addr}, State: st, Up: s.up})
	}
	slices.SortFunc(out, func(a, b sessionstore.NodeState) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	return out
}

// monitor connects if the first attempt failed and PINGs every server the
// client knows, for Status.
func (r *Store) monitor() {
	defer r.wg.Done()
	t := time.NewTicker(r.opts.ProbeInterval)
	defer t.Stop()
	replicas := map[string]rueidis.Client{} // probe connections, this goroutine's own
	defer func() {
		for _, c := range replicas {
			c.Close()
		}
	}()
	for {
		r.probe(replicas)
		select {
		case <-r.closed:
			return
		case <-t.C:
		}
		r.presence()
	}
}

// presenceScript refreshes this process's presence mark, ARGV[1] with a
// life of ARGV[2] ms, in the sorted set KEYS[1] scored by expiry on the
// server's clock (so that the proxies' clocks need not agree), drops the
// expired ones, and answers how many others are left.
var presenceScript = newLua(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1]) - 1
`)

// presence refreshes this process's mark and counts the others'
// (sessionstore's peers.go); without ClientCache only. When Redis does not answer, the
// last count stands. It returns the count (-1: unknown).
func (r *Store) presence() int {
	if r.opts.ClientCache {
		return -1
	}
	c, err := r.cli()
	if err != nil {
		return -1
	}
	ctx, cancel := r.ctx()
	defer cancel()
	key := r.opts.KeyPrefix + "proxies"
	ttl := strconv.FormatInt(sessionstore.MarkTTL(r.opts.ProbeInterval).Milliseconds(), 10)
	for _, bySha := range [2]bool{true, false} {
		var cmd rueidis.Completed
		if bySha {
			cmd = c.B().Evalsha().Sha1(presenceScript.sha).Numkeys(1).Key(key).Arg(r.opts.InstanceID, ttl).Build()
		} else {
			cmd = c.B().Eval().Script(presenceScript.src).Numkeys(1).Key(key).Arg(r.opts.InstanceID, ttl).Build()
		}
		n, err := c.Do(ctx, cmd).AsInt64()
		if re, ok := rueidis.IsRedisErr(err); ok && bySha && re.IsNoScript() {
			continue
		}
		if err != nil {
			return -1
		}
		r.peers.Set(int(n))
		return int(n)
	}
	return -1
}

// WatchPeers has fn told how many other processes keep presence marks on
// Redis (PeerWatcher); never with ClientCache, whose invalidations make
// marks needless.
func (r *Store) WatchPeers(fn func(others int)) { r.peers.Watch(fn) }

func (r *Store) probe(replicas map[string]rueidis.Client) {
	if err := r.connect(); err != nil {
		r.setUp(r.opts.Addrs, nil)
		return
	}
	c := *r.client.Load()
	nodes := c.Nodes()
	addrs := make([]string, 0, len(nodes))
	var up []string
	ping := func(n rueidis.Client) bool {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout*5)
		defer cancel()
		return n.Do(ctx, n.B().Ping().Build()).Error() == nil
	}
	for addr, n := range nodes {
		addrs = append(addrs, addr)
		if ping(n) {
			up = append(up, addr)
		}
	}
	// A Cluster client holds connections to the masters only, so a
	// replica (a configured seed, or a master that was failed over) is
	// not among its nodes; it is pinged through a connection of its own,
	// or /status and sessionproxy_redis_up would call a healthy replica
	// down for as long as the process runs.
	for _, addr := range r.unprobed(nodes) {
		addrs = append(addrs, addr)
		n := replicas[addr]
		if n == nil {
			var err error
			if n, err = rueidis.NewClient(r.probeOption(addr)); err != nil {
				continue
			}
			replicas[addr] = n
		}
		if ping(n) {
			up = append(up, addr)
		}
	}
	r.setUp(addrs, up)
}

// unprobed lists the servers seen so far that are not among nodes.
func (r *Store) unprobed(nodes map[string]rueidis.Client) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for addr := range r.servers {
		if _, ok := nodes[addr]; !ok {
			out = append(out, addr)
		}
	}
	return out
}

// probeOption is a one-connection client for PING alone: no cache, no
// tracking, the same credentials and timeouts as the store's own.
func (r *Store) probeOption(addr string) rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress:       []string{addr},
		ForceSingleClient: true,
		DisableCache:      true,
		Username:          r.opts.Username,
		Password:          r.opts.Password,
		Dialer:            net.Dialer{Timeout: r.opts.Timeout, KeepAlive: time.Second},
		ConnWriteTimeout:  max(r.opts.Timeout, time.Second),
		ClientName:        "sessionproxy-probe",
	}
}

// setUp records which of addrs answered (up) and logs the changes.
func (r *Store) setUp(addrs, up []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range addrs {
		s := r.servers[a]
		if s == nil {
			s = &redisSrv{addr: a}
			r.servers[a] = s
		}
		now := slices.Contains(up, a)
		if now != s.up && (s.known || !now) {
			r.logger().Info("redis server state", "addr", a, "up", now)
		}
		s.up, s.known = now, true
	}
	// A server the client no longer names (a dead master replaced by its
	// replica) is down.
	for a, s := range r.servers {
		if s.up && !slices.Contains(addrs, a) {
			s.up = false
			r.logger().Info("redis server state", "addr", a, "up", false)
		}
	}
}

func (r *Store) key(id []byte) string { return r.opts.KeyPrefix + string(id) }

func (r *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.opts.Timeout)
}

// cli returns the client, or sessionstore.ErrUnavailable before the first connection.
func (r *Store) cli() (rueidis.Client, error) {
	if c := r.client.Load(); c != nil {
		return *c, nil
	}
	return nil, sessionstore.ErrUnavailable
}

// unavailable turns a client error into sessionstore.ErrUnavailable, keeping the cause
// for the log.
func unavailable(err error) error {
	return fmt.Errorf("%w: %v", sessionstore.ErrUnavailable, err)
}

// Get returns the session's value from its master.
func (r *Store) Get(id []byte) ([]byte, error) {
	c, err := r.cli()
	if err != nil {
		return nil, err
	}
	ctx, cancel := r.ctx()
	defer cancel()
	v, err := c.Do(ctx, c.B().Get().Key(r.key(id)).Build()).AsBytes()
	switch {
	case rueidis.IsRedisNil(err):
		return nil, sessionstore.ErrNotFound
	case err != nil:
		return nil, unavailable(err)
	}
	return v, nil
}

// versionLua reads the version of a stored session (its uvarint after the
// format and flags bytes) and writes only when the caller's condition on
// it holds. A value it cannot read counts as absent (-1), as the Memcached
// store overwrites a corrupt value. Lua numbers are doubles: versions are
// exact up to 2^53, far beyond what a session reaches.
const versionLua = `
local function ver(v)
  if not v or #v < 3 or string.byte(v, 1) ~= 1 then return -1 end
  local x, m = 0, 1
  for i = 3, math.min(#v, 12) do
    local b = string.byte(v, i)
    x = x + (b % 128) * m
    if b < 128 then return x end
    m = m * 128
  end
  return -1
end
local held = ver(redis.call('GET', KEYS[1]))
`

// casScript sets KEYS[1] to ARGV[2] (expiring at unix second ARGV[3]) if
// the version held is ARGV[1] (-1: none held); 0 means another writer got
// in between.
var casScript = newLua(versionLua + `
if held ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
return 1
`)

// newerScript sets KEYS[1] to ARGV[2] unless the version held is ARGV[1]
// or newer; it answers 1 either way, since the key then holds that
// version or a newer one.
var newerScript = newLua(versionLua + `
if held >= tonumber(ARGV[1]) then return 1 end
redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])
return 1
`)

// lua is a script and its SHA1, sent by EVALSHA first.
type lua struct{ src, sha string }

func newLua(src string) *lua {
	sum := sha1.Sum([]byte(src))
	return &lua{src: src, sha: hex.EncodeToString(sum[:])}
}

// exat is the EXAT of a value that may be dropped at expires (unix
// seconds), never in the past.
func exat(expires int64) string {
	return strconv.FormatInt(max(expires, time.Now().Unix()+1), 10)
}

// script runs s on key with args and, when WaitReplicas is set, WAIT in
// the same pipeline to the key's master, so that it waits for this write.
// It returns the script's integer answer. EVALSHA fails with NOSCRIPT on a
// server that has not seen the script yet (a restart, a promoted
// replica): then the script itself is sent.
//
// WAIT counts the replicas that acknowledged every write of its own
// connection, so it must follow the write on the connection that carried
// it; built as the blocking command it is, it takes the write with it to
// a dedicated connection, where it holds up nobody else's commands while
// it waits (on the shared, auto-pipelined connection a slow replica stalled
// every read behind it). The server waits Timeout for the replicas and the
// client a Timeout longer, so that a shortfall is the server's count, not
// a client deadline that hit first (issue 22: the first write after a
// replica came online took about 800ms to be acknowledged, the client
// gave up at 100ms, and the store kept the write as if the shared store
// were down).
func (r *Store) script(s *lua, key string, args ...string) (int64, error) {
	c, err := r.cli()
	if err != nil {
		return 0, err
	}
	wait := r.opts.WaitReplicas > 0
	d := r.opts.Timeout
	if wait {
		d += r.opts.Timeout
	}
	for _, bySha := range [2]bool{true, false} {
		// A deadline for each attempt: after NOSCRIPT, the first
		// attempt's WAIT may have used its time (a replica that does not
		// acknowledge this connection's earlier writes).
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var cmd rueidis.Completed
		if bySha {
			cmd = c.B().Evalsha().Sha1(s.sha).Numkeys(1).Key(key).Arg(args...).Build()
		} else {
			cmd = c.B().Eval().Script(s.src).Numkeys(1).Key(key).Arg(args...).Build()
		}
		cmds := rueidis.Commands{cmd}
		if wait {
			cmds = append(cmds, c.B().Wait().Numreplicas(int64(r.opts.WaitReplicas)).Timeout(r.opts.Timeout.Milliseconds()).Build().SetSlot(key))
		}
		res := c.DoMulti(ctx, cmds...)
		n, err := res[0].AsInt64()
		if re, ok := rueidis.IsRedisErr(err); ok && bySha && re.IsNoScript() {
			continue
		}
		if err != nil {
			return 0, unavailable(err)
		}
		if wait {
			acked, err := res[1].AsInt64()
			if err != nil {
				return 0, fmt.Errorf("%w: %w: waiting for %d replicas: %v", sessionstore.ErrUnavailable, sessionstore.ErrNotReplicated, r.opts.WaitReplicas, err)
			}
			if acked < int64(r.opts.WaitReplicas) {
				return 0, fmt.Errorf("%w: %w: %d of %d replicas acknowledged the write within %v",
					sessionstore.ErrUnavailable, sessionstore.ErrNotReplicated, acked, r.opts.WaitReplicas, r.opts.Timeout)
			}
		}
		return n, nil
	}
	return 0, sessionstore.ErrUnavailable
}

// Merge reads the session, has mg build the new value on it, and writes it
// only if the version held is still the one read; when another writer got
// in between it builds again on the newer copy. So concurrent requests
// through several proxies that change different attributes keep every
// change.
func (r *Store) Merge(id []byte, mg sessionstore.Merger) error {
	key := r.key(id)
	for try := 0; try < sessionstore.MaxCASTries; try++ {
		cur, err := r.Get(id)
		switch {
		case errors.Is(err, sessionstore.ErrNotFound):
			cur = nil
		case err != nil:
			return err
		}
		held := int64(-1)
		if cur != nil {
			if mt, err := sessionstore.PeekMeta(cur); err == nil {
				held = int64(mt.Version)
			}
		}
		val, err := mg.Merge(cur)
		if err != nil {
			return err
		}
		mt, err := sessionstore.PeekMeta(val)
		if err != nil {
			return err
		}
		ok, err := r.script(casScript, key, strconv.FormatInt(held, 10), string(val), exat(mt.Expires))
		if err != nil {
			return err
		}
		if ok == 1 {
			return nil
		}
		sessionstore.Backoff(try)
	}
	return sessionstore.ErrConflict
}

// Put sets val whatever is held: only for a caller whose copy is the
// authoritative one.
func (r *Store) Put(id, val []byte) error {
	mt, err := sessionstore.PeekMeta(val)
	if err != nil {
		return err
	}
	c, err := r.cli()
	if err != nil {
		return err
	}
	if r.opts.WaitReplicas > 0 {
		// The same conditional write with WAIT behind it: a Put of the
		// one writer always carries a newer version than what is held.
		_, err := r.script(newerScript, r.key(id), strconv.FormatUint(mt.Version, 10), string(val), exat(mt.Expires))
		return err
	}
	ctx, cancel := r.ctx()
	defer cancel()
	cmd := c.B().Set().Key(r.key(id)).Value(rueidis.BinaryString(val)).ExatTimestamp(max(mt.Expires, time.Now().Unix()+1)).Build()
	if err := c.Do(ctx, cmd).Error(); err != nil {
		return unavailable(err)
	}
	return nil
}

// PutIfNewer stores val unless the session's version or a newer one is
// held.
func (r *Store) PutIfNewer(id, val []byte) error {
	mt, err := sessionstore.PeekMeta(val)
	if err != nil {
		return err
	}
	_, err = r.script(newerScript, r.key(id), strconv.FormatUint(mt.Version, 10), string(val), exat(mt.Expires))
	return err
}
