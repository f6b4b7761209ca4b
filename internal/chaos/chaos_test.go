//go:build chaos

package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"sessionproxy/internal/apptest"
	"sessionproxy/internal/memcachedtest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessionproxy-chaos")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sessionproxy")
	// Without -race: the harness runs several proxies at full load on a
	// small machine, and what it checks is the contract, not data races
	// (the package tests run under -race).
	if out, err := exec.Command("go", "build", "-o", binary, "sessionproxy/cmd/sessionproxy").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sessionproxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stale is how far back a read may see: under memcached, proxies see each
// other's changes within local_cache.ttl (auto: 1s once another proxy is
// on the nodes, CONTRACT 11 and 12). Every operation's start is moved back
// by it, so porcupine may order it up to that much earlier; anything older
// is a violation. The margin covers scheduling on a loaded machine.
const stale = 1500 * time.Millisecond

// settings of one run, from the environment: CHAOS_SEED (a number, or
// "random"), CHAOS_DURATION (per configuration).
func settings(t *testing.T) (int64, time.Duration) {
	seed := int64(1)
	switch s := os.Getenv("CHAOS_SEED"); s {
	case "":
	case "random":
		seed = time.Now().UnixNano() % 1000000
	default:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q", s)
		}
		seed = n
	}
	d := 25 * time.Second
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("CHAOS_DURATION=%q", s)
		}
	}
	return seed, d
}

// TestChaosMemcached runs the harness over 2 and 3 memcached nodes
// (replicas 2) with 3 proxies. Replay a failure with CHAOS_SEED=<seed>
// (the timing of faults and requests still varies: a seed fixes the
// choices, not the interleaving).
func TestChaosMemcached(t *testing.T) {
	seed, d := settings(t)
	for _, nodes := range []int{2, 3} {
		t.Run(fmt.Sprintf("nodes%d", nodes), func(t *testing.T) {
			t.Logf("seed %d, %v, %d memcached nodes, 3 proxies (replay: CHAOS_SEED=%d)", seed, d, nodes, seed)
			runChaos(t, seed+int64(nodes), d, newMemcachedStore(t, nodes), 3)
		})
	}
}

// backend sets X-Session-Set-<attr> from ?set=attr:val, asks for rotation
// or invalidation, and echoes the session it received as JSON.
func backend(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if kv := q.Get("set"); kv != "" {
			k, v, _ := strings.Cut(kv, ":")
			w.Header().Set("X-Session-Set-"+k, v)
		}
		if q.Get("rotate") != "" {
			w.Header().Set("X-Session-Rotate", "1")
		}
		if q.Get("invalidate") != "" {
			w.Header().Set("X-Session-Invalidate", "1")
		}
		attrs := map[string]string{}
		for name, vs := range r.Header {
			if a, ok := strings.CutPrefix(strings.ToLower(name), "x-session-attr-"); ok {
				attrs[a] = vs[0]
			}
		}
		json.NewEncoder(w).Encode(echo{ID: r.Header.Get("X-Session-Id"), New: r.Header.Get("X-Session-New") != "", Attrs: canon(attrs)})
	}))
	t.Cleanup(s.Close)
	return s
}

type echo struct {
	ID    string `json:"id"`
	New   bool   `json:"new"`
	Attrs string `json:"attrs"`
}

// proxy is one sessionproxy process that the nemesis may kill, freeze and
// restart on the same ports and state directory.
type proxy struct {
	t     *testing.T
	conf  string
	addr  string
	admin string
	logf  *os.File
	mu    sync.Mutex
	cmd   *exec.Cmd
}

func (p *proxy) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(binary, "run", "-config", p.conf)
	cmd.Stdout, cmd.Stderr = p.logf, p.logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Errorf("starting proxy: %v", err)
		return
	}
	p.cmd = cmd
	go cmd.Wait()
}

func (p *proxy) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.cmd.Process.Signal(sig)
	}
}

func (p *proxy) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(sig)
	for i := 0; i < 100; i++ { // up to 10s for a graceful stop
		if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Kill()
}

// nodesUp reports whether p's /status shows every node up (not down, not
// catching up).
func (p *proxy) nodesUp(n int) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.admin + "/status")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Count(string(b), `"state":"up"`) >= n && !strings.Contains(string(b), `"catching_up"`) && !strings.Contains(string(b), `"down"`)
}

type recorder struct {
	mu    sync.Mutex
	ops   []porcupine.Operation
	start time.Time
	stale time.Duration // how far back a read may see (the store's bound)
}

// add records one request: a read (or create) as one operation whose
// start is moved back by stale; a change as two (model_test.go, op.part):
// what it was shown, moved back likewise, and its effect, within the
// request's own time. A failed request's return is infinite (porcupine's
// way of saying it may have happened any time after it started).
func (r *recorder) add(client int, o op, res result, call, ret time.Time) {
	c := int64(call.Sub(r.start))
	rt := int64(ret.Sub(r.start))
	if res.unknown {
		rt = math.MaxInt64
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o.kind {
	case "read", "create":
		r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: o, Call: c - int64(r.stale), Output: res, Return: rt})
	default:
		if !res.unknown {
			obs := o
			obs.part = "obs"
			r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: obs, Call: c - int64(r.stale), Output: res, Return: rt})
		}
		o.part = "eff"
		r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: o, Call: c, Output: res, Return: rt})
	}
}

// A store is what a run's proxies share, with its own nemesis: memcached
// nodes (memcachedStore) or Redis (redis_test.go).
type store interface {
	// section is the store's lines under session: in a proxy's YAML.
	section() string
	// stale is how far back a read may see (recorder.stale).
	stale() time.Duration
	// settled reports whether the next fault may start: the store has
	// recovered from the last one, as far as the proxies can see.
	settled(proxies []*proxy) bool
	// fault breaks something, holds it for a while and heals it, noting
	// what it did; a fault that may lose acknowledged writes by the
	// store's own documented rules (a Redis promotion) is recorded in rec.
	fault(rnd *rand.Rand, note func(string, ...interface{}), rec *recorder)
	// model is what the history is checked against.
	model() porcupine.Model
}

// memcachedStore is nodes memcached servers, each behind a relay, with
// replicas 2.
type memcachedStore struct {
	mcs    []*memcachedtest.Server
	relays []*relay
	nodes  []string
}

func newMemcachedStore(t *testing.T, nNodes int) *memcachedStore {
	m := &memcachedStore{}
	for i := 0; i < nNodes; i++ {
		mc := memcachedtest.Start(t)
		r := startRelay(t, mc.Addr)
		m.mcs, m.relays = append(m.mcs, mc), append(m.relays, r)
		m.nodes = append(m.nodes, fmt.Sprintf("%q", fmt.Sprintf("n%d:%s", i+1, r.addr())))
	}
	return m
}

func (m *memcachedStore) section() string {
	return fmt.Sprintf("  memcached:\n    nodes: [%s]\n    replicas: 2\n", strings.Join(m.nodes, ", "))
}

func (m *memcachedStore) stale() time.Duration { return stale }

func (m *memcachedStore) model() porcupine.Model { return sessionModel }

// settled: every proxy that runs sees every node up again (catching up
// done), so that no session legitimately loses all its replicas.
func (m *memcachedStore) settled(proxies []*proxy) bool {
	up := 0
	for _, p := range proxies {
		if p.nodesUp(len(m.mcs)) {
			up++
		}
	}
	return up >= 1 && up >= countRunning(proxies)
}

// fault: one node killed (restarted empty), frozen or partitioned.
func (m *memcachedStore) fault(rnd *rand.Rand, note func(string, ...interface{}), _ *recorder) {
	i := rnd.Intn(len(m.mcs))
	hold := time.Duration(300+rnd.Intn(2500)) * time.Millisecond
	switch rnd.Intn(3) {
	case 0:
		note("kill memcached n%d for %v", i+1, hold)
		m.mcs[i].Stop()
		time.Sleep(hold)
		m.mcs[i].Restart()
		note("restarted n%d (empty)", i+1)
	case 1:
		note("freeze memcached n%d for %v", i+1, hold)
		m.mcs[i].Freeze()
		time.Sleep(hold)
		m.mcs[i].Thaw()
		note("thawed n%d", i+1)
	case 2:
		note("partition n%d from the proxies for %v", i+1, hold)
		m.relays[i].setCut(true)
		time.Sleep(hold)
		m.relays[i].setCut(false)
		note("healed n%d", i+1)
	}
}

func runChaos(t *testing.T, seed int64, d time.Duration, st store, nProxies int) {
	app := backend(t)
	dir := t.TempDir()
	addrs := apptest.FreeAddrs(t, 2*nProxies)
	var proxies []*proxy
	for i := 0; i < nProxies; i++ {
		// Shipped defaults but for what the harness needs to reach: the
		// admin listener (/status, to pace the nemesis) and a state
		// directory of each proxy's own that outlives its restarts.
		conf := filepath.Join(dir, fmt.Sprintf("p%d.yaml", i))
		yaml := fmt.Sprintf("listen: %q\nadmin: %q\nstate_dir: %q\nbackends:\n  - url: %q\nsession:\n",
			addrs[2*i], addrs[2*i+1], filepath.Join(dir, fmt.Sprintf("state%d", i)), app.URL) + st.section()
		// CHAOS_LOCAL_CACHE_TTL checks the harness itself: a ttl beyond
		// the bound the model allows (e.g. 10s) must make it fail.
		if ttl := os.Getenv("CHAOS_LOCAL_CACHE_TTL"); ttl != "" {
			yaml += fmt.Sprintf("  local_cache:\n    ttl: %s\n", ttl)
		}
		if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(binary, "check", "-config", conf).CombinedOutput(); err != nil {
			t.Fatalf("check: %v\n%s", err, out)
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("p%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		p := &proxy{t: t, conf: conf, addr: addrs[2*i], admin: addrs[2*i+1], logf: logf}
		p.start()
		t.Cleanup(func() { p.stop(syscall.SIGKILL); logf.Close() })
		proxies = append(proxies, p)
	}
	for _, p := range proxies {
		apptest.WaitListen(t, p.addr, "sessionproxy", 30*time.Second)
	}

	rec := &recorder{start: time.Now(), stale: st.stale()}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var nlog sync.Mutex
	var faults []string
	note := func(f string, a ...interface{}) {
		nlog.Lock()
		faults = append(faults, fmt.Sprintf("%6.2fs ", time.Since(rec.start).Seconds())+fmt.Sprintf(f, a...))
		nlog.Unlock()
	}

	// Store nemesis: one fault at a time; the next waits (up to 10s)
	// until the store has recovered (store.settled).
	wg.Add(1)
	go func() {
		defer wg.Done()
		rnd := rand.New(rand.NewSource(seed * 7))
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(500+rnd.Intn(1500)) * time.Millisecond)
			for w := 0; w < 100 && time.Now().Before(deadline) && !st.settled(proxies); w++ {
				time.Sleep(100 * time.Millisecond)
			}
			if !time.Now().Before(deadline) {
				return
			}
			st.fault(rnd, note, rec)
		}
	}()

	// Proxy nemesis: one proxy at a time is killed (SIGKILL or SIGTERM)
	// and restarted, or frozen.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rnd := rand.New(rand.NewSource(seed * 13))
		for time.Now().Before(deadline) {
			time.Sleep(time.Duration(1000+rnd.Intn(2000)) * time.Millisecond)
			if !time.Now().Before(deadline) {
				return
			}
			i := rnd.Intn(nProxies)
			p := proxies[i]
			hold := time.Duration(200+rnd.Intn(1500)) * time.Millisecond
			switch rnd.Intn(3) {
			case 0:
				note("kill -9 proxy p%d for %v", i, hold)
				p.stop(syscall.SIGKILL)
				time.Sleep(hold)
				p.start()
			case 1:
				note("stop (SIGTERM) proxy p%d for %v", i, hold)
				p.stop(syscall.SIGTERM)
				time.Sleep(hold)
				p.start()
			case 2:
				note("freeze proxy p%d for %v", i, hold)
				p.signal(syscall.SIGSTOP)
				time.Sleep(hold)
				p.signal(syscall.SIGCONT)
			}
			apptest.WaitListen(t, p.addr, "restarted sessionproxy", 30*time.Second)
			note("p%d back", i)
		}
	}()

	// Clients.
	var lineages sync.Mutex
	nextLineage := 0
	newLineage := func() int {
		lineages.Lock()
		defer lineages.Unlock()
		nextLineage++
		return nextLineage
	}
	var valMu sync.Mutex
	nextVal := 0
	uniq := func() string {
		valMu.Lock()
		defer valMu.Unlock()
		nextVal++
		return "v" + strconv.Itoa(nextVal)
	}
	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(seed*1000 + int64(w)))
			cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			type past struct {
				lineage int
				id      string
			}
			var dead []past
			lineage, cur := 0, ""
			for time.Now().Before(deadline) {
				time.Sleep(time.Duration(20+rnd.Intn(60)) * time.Millisecond)
				pi := rnd.Intn(nProxies)
				if cur == "" {
					o := op{lineage: newLineage(), kind: "create", attr: "a", val: uniq(), proxy: pi}
					call := time.Now()
					res, ok := do(cl, proxies[pi].addr, "set=a:"+o.val, "")
					if ok && !res.unknown && res.newID != "" {
						rec.add(w, o, res, call, time.Now())
						lineage, cur = o.lineage, res.newID
					}
					continue
				}
				o := op{lineage: lineage, id: cur, proxy: pi}
				q := ""
				switch x := rnd.Intn(100); {
				case x < 10 && len(dead) > 0:
					pd := dead[rnd.Intn(len(dead))]
					o.lineage, o.id, o.kind = pd.lineage, pd.id, "read"
				case x < 55:
					o.kind = "read"
				case x < 85:
					o.kind, o.attr, o.val = "write", []string{"a", "b", "c"}[rnd.Intn(3)], uniq()
					q = "set=" + o.attr + ":" + o.val
				case x < 93:
					o.kind, q = "rotate", "rotate=1"
				default:
					o.kind, q = "invalidate", "invalidate=1"
				}
				call := time.Now()
				res, ok := do(cl, proxies[pi].addr, q, o.id)
				if !ok {
					continue // never reached the proxy (connection refused)
				}
				rec.add(w, o, res, call, time.Now())
				if o.id != cur {
					continue // a probe of a dead ID
				}
				switch {
				case o.kind == "rotate" && !res.unknown && res.found:
					dead = append(dead, past{lineage, cur})
					cur = res.newID
				case o.kind == "invalidate" && !res.unknown && res.found:
					dead = append(dead, past{lineage, cur})
					cur = ""
				case res.unknown && (o.kind == "rotate" || o.kind == "invalidate"):
					cur = "" // which ID holds the session is unknown: start anew
				case !res.unknown && !res.found:
					cur = "" // lost: the model reports it
				}
				if cur == "" {
					lineage = 0
				}
			}
		}(w)
	}
	wg.Wait()
	for _, p := range proxies {
		p.signal(syscall.SIGCONT)
	}

	unknown := 0
	kinds := map[string]int{}
	for _, o := range rec.ops {
		kinds[o.Input.(op).kind]++
		if o.Output.(result).unknown {
			unknown++
		}
	}
	t.Logf("%d operations (%v), %d indeterminate, %d lineages; %d faults:\n%s", len(rec.ops), kinds, unknown, nextLineage, len(faults), strings.Join(faults, "\n"))
	if len(rec.ops) < 100 {
		t.Errorf("only %d operations recorded: the harness did not exercise the proxies", len(rec.ops))
	}
	checkHistory(t, st.model(), st.stale(), rec.ops, seed)
	if t.Failed() {
		for i, p := range proxies {
			b, _ := os.ReadFile(p.logf.Name())
			var keep []string
			for _, l := range strings.Split(string(b), "\n") {
				if l != "" && !strings.Contains(l, "msg=access") {
					keep = append(keep, l)
				}
			}
			if len(keep) > 200 {
				keep = keep[len(keep)-200:]
			}
			// The whole log, access lines too, outlives the test's
			// directory: a violation is read against what each proxy did.
			kept := filepath.Join(os.TempDir(), fmt.Sprintf("chaos-seed%d-p%d.log", seed, i))
			os.WriteFile(kept, b, 0o644)
			t.Logf("p%d's log but the access lines (whole log: %s):\n%s", i, kept, strings.Join(keep, "\n"))
		}
	}
}

func countRunning(ps []*proxy) int {
	n := 0
	for _, p := range ps {
		p.mu.Lock()
		if p.cmd != nil {
			n++
		}
		p.mu.Unlock()
	}
	return n
}

// do sends one request through the proxy at addr with the session cookie
// id; ok is false if the proxy was not reached at all (the operation did
// not happen).
func do(cl *http.Client, addr, query, id string) (result, bool) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/op?"+query, nil)
	if id != "" {
		req.Header.Set("Cookie", "SPSESSIONID="+id)
	}
	resp, err := cl.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return result{}, false
		}
		return result{unknown: true}, true
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	res := result{status: resp.StatusCode}
	if resp.StatusCode != 200 || err != nil {
		res.unknown = true
		return res, true
	}
	var e echo
	if json.Unmarshal(body, &e) != nil {
		res.unknown = true
		return res, true
	}
	res.seenID, res.attrs = e.ID, e.Attrs
	res.found = id != "" && e.ID == id && !e.New
	for _, c := range resp.Cookies() {
		if c.Name == "SPSESSIONID" && c.MaxAge >= 0 && c.Value != "" {
			res.newID = c.Value
		}
	}
	return res, true
}

// checkHistory checks each lineage on its own and, for one that breaks
// the model, prints its whole history (the smallest that shows the
// violation: a lineage is one client's session) and writes porcupine's
// visualization.
func checkHistory(t *testing.T, model porcupine.Model, staleness time.Duration, ops []porcupine.Operation, seed int64) {
	parts := model.Partition(ops)
	single := model
	single.Partition = nil
	bad := 0
	for _, part := range parts {
		res, info := porcupine.CheckOperationsVerbose(single, part, 30*time.Second)
		if res == porcupine.Ok {
			continue
		}
		bad++
		if bad > 3 {
			continue
		}
		sort.Slice(part, func(i, j int) bool { return part[i].Call < part[j].Call })
		var b strings.Builder
		for _, o := range part {
			ret := "∞"
			if o.Return != math.MaxInt64 {
				ret = fmt.Sprintf("%.3fs", float64(o.Return)/1e9)
			}
			fmt.Fprintf(&b, "  [%.3fs, %s] client %d: %s\n", float64(o.Call)/1e9, ret, o.ClientId, model.DescribeOperation(o.Input, o.Output))
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("chaos-seed%d-lineage%d-%s.html", seed, part[0].Input.(op).lineage, part[0].Input.(op).only))
		if err := porcupine.VisualizePath(single, info, path); err != nil {
			t.Logf("visualization: %v", err)
		}
		t.Errorf("lineage %d, attribute %s: %v against the contract's model (seed %d); visualization %s; history (a read's start, and what a change was shown, moved back by %v; its effect not):\n%s",
			part[0].Input.(op).lineage, part[0].Input.(op).only, res, seed, path, staleness, b.String())
	}
	if bad > 0 {
		t.Errorf("%d of %d partitions (lineage × attribute) violate the model", bad, len(parts))
	} else {
		t.Logf("%d partitions (lineage × attribute), %d operations: linearizable against the model", len(parts), len(ops))
	}
}
