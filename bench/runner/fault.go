package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The fault scenario (-fault): clients keep writing their sessions while
// one memcached node is killed and restarted empty, the other is frozen
// and thawed, and a backend is killed; then the first node is killed
// again and every session is read back from the second alone. See
// bench/README.md.

var (
	faultMode     = flag.Bool("fault", false, "run the fault scenario instead of the wrk comparison (with -redraw: redraw its chart)")
	faultTargets  = flag.String("fault-targets", "sessionproxy", "systems under the fault scenario, comma-separated: sessionproxy, classic")
	faultClients  = flag.Int("fault-clients", 64, "concurrent clients, each with its own connection and session")
	faultDuration = flag.Duration("fault-duration", 40*time.Second, "recorded length of the fault run")
	faultWarmup   = flag.Duration("fault-warmup", 2*time.Second, "load before recording starts: sessions created, connections open")
	faultPoll     = flag.Duration("fault-poll", 100*time.Millisecond, "how often the target's /status is read")
	faultTimeout  = flag.Duration("fault-timeout", 5*time.Second, "a client's request timeout")

	atKillN1      = flag.Duration("fault-kill-n1", 5*time.Second, "when memcached n1 is killed (kill -9); negative: never")
	atRestartN1   = flag.Duration("fault-restart-n1", 10*time.Second, "when n1 is started again, empty, on its port; negative: never")
	atFreezeN2    = flag.Duration("fault-freeze-n2", 20*time.Second, "when memcached n2 is frozen (SIGSTOP); negative: never")
	atThawN2      = flag.Duration("fault-thaw-n2", 23*time.Second, "when n2 is thawed (SIGCONT); negative: never")
	atKillBackend = flag.Duration("fault-kill-backend", 30*time.Second, "when the first backend is killed (kill -9); negative: never")
)

// faultEnv is one run's processes: the memcached nodes here, the target's
// backends and proxies through spawnLog.
type faultEnv struct {
	env
	proxyBin, backendBin string
	nodes                []*mcNode // n1, n2

	t0 time.Time // start of recording: event times are seconds from it

	mu     sync.Mutex // protects events and doing
	doing  string     // the step being performed: its event is recorded once it is done
	events []event
}

// mcNode is one memcached process, restarted on the same port.
type mcNode struct {
	ID, Addr string
	cmd      *exec.Cmd
}

// event is one line of the event list: a step of the timeline (action),
// a state change seen in the target's status (observed), or one inferred
// from its counters (inferred).
type event struct {
	T      float64 `json:"t"` // seconds from the start of recording
	Name   string  `json:"name"`
	Source string  `json:"source"` // action, observed or inferred
	Note   string  `json:"note,omitempty"`
}

func (f *faultEnv) event(at time.Time, name, source, note string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{T: at.Sub(f.t0).Seconds(), Name: name, Source: source, Note: note})
}

// provoked reports whether the runner killed or froze node in the two
// seconds before at.
func (f *faultEnv) provoked(node string, at time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := at.Sub(f.t0).Seconds()
	for _, e := range f.events {
		if e.Source == "action" && (e.Name == "kill "+node || e.Name == "freeze "+node) && t-e.T <= 2 {
			return true
		}
	}
	// The poller may see the node down before the kill has returned.
	return f.doing == "kill "+node || f.doing == "freeze "+node
}

func (f *faultEnv) startNode(n *mcNode) error {
	_, port, _ := net.SplitHostPort(n.Addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "256", "-t", "2"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd, err := f.spawnLog("memcached-"+n.ID, "memcached", args...)
	if err != nil {
		return err
	}
	n.cmd = cmd
	return listening(n.Addr, 5*time.Second)
}

// kill sends SIGKILL to cmd and reaps it.
func kill(cmd *exec.Cmd) error {
	if cmd == nil || cmd.ProcessState != nil {
		return errors.New("not running")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	cmd.Wait()
	return nil
}

// step is one fault of the timeline.
type step struct {
	name string
	at   time.Duration
	do   func() error
}

func (f *faultEnv) timeline(t faultTarget) []step {
	n1, n2 := f.nodes[0], f.nodes[1]
	send := func(n *mcNode, sig syscall.Signal) func() error {
		return func() error { return n.cmd.Process.Signal(sig) }
	}
	all := []step{
		{"kill n1", *atKillN1, func() error { return kill(n1.cmd) }},
		{"n1 restarted", *atRestartN1, func() error { return f.startNode(n1) }},
		{"freeze n2", *atFreezeN2, send(n2, syscall.SIGSTOP)},
		{"thaw n2", *atThawN2, send(n2, syscall.SIGCONT)},
		{"kill backend", *atKillBackend, func() error { return kill(t.Backend()) }},
	}
	var steps []step
	for _, s := range all {
		if s.at >= 0 {
			steps = append(steps, s)
		}
	}
	return steps
}

// checkTimeline refuses timelines whose steps cannot work: a restart of a
// node that was never killed would find its port taken, a thaw without a
// freeze does nothing, and a step past the end would never run.
func checkTimeline() error {
	pairs := []struct {
		first, then     time.Duration
		firstN, secondN string
	}{
		{*atKillN1, *atRestartN1, "-fault-kill-n1", "-fault-restart-n1"},
		{*atFreezeN2, *atThawN2, "-fault-freeze-n2", "-fault-thaw-n2"},
	}
	for _, p := range pairs {
		if p.then >= 0 && (p.first < 0 || p.then <= p.first) {
			return fmt.Errorf("%s needs %s before it", p.secondN, p.firstN)
		}
	}
	for _, d := range []time.Duration{*atKillN1, *atRestartN1, *atFreezeN2, *atThawN2, *atKillBackend} {
		if d >= *faultDuration {
			return fmt.Errorf("a step at %s is past -fault-duration %s", d, *faultDuration)
		}
	}
	if *faultDuration < 5*time.Second || *faultClients < 1 {
		return errors.New("-fault-duration must be at least 5s and -fault-clients at least 1")
	}
	return nil
}

// runTimeline performs the steps at their times, until they are done or
// stop is closed.
func (f *faultEnv) runTimeline(steps []step, stop <-chan struct{}) {
	for _, s := range steps {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(f.t0.Add(s.at))):
		}
		at := time.Now()
		note := ""
		f.mu.Lock()
		f.doing = s.name
		f.mu.Unlock()
		if err := s.do(); err != nil {
			note = "failed: " + err.Error()
			log.Printf("fault: %s: %v", s.name, err)
		}
		f.event(at, s.name, "action", note)
		f.mu.Lock()
		f.doing = ""
		f.mu.Unlock()
		log.Printf("fault: %5.2fs %s", at.Sub(f.t0).Seconds(), s.name)
	}
}

// runFault runs the fault scenario on each target and writes the results;
// it returns the exit status: 2 when a session was lost, so that the
// number that matters cannot pass unnoticed.
func runFault() int {
	if *redraw {
		return redrawFault()
	}
	if err := checkTimeline(); err != nil {
		log.Printf("runner: %v", err)
		return 1
	}
	var targets []faultTarget
	for _, name := range strings.Split(*faultTargets, ",") {
		mk, ok := faultTargetsByName[strings.TrimSpace(name)]
		if !ok {
			log.Printf("runner: unknown fault target %q", name)
			return 1
		}
		targets = append(targets, mk())
	}
	ensureTools()
	rep := faultReport{
		Date: time.Now().UTC().Format(time.RFC3339), Commit: gitCommit(), Machine: machine(),
		Config: faultConfig(), LoadBefore: loadAvg(),
	}
	for _, t := range targets {
		run, err := faultRunOne(t)
		if err != nil {
			log.Printf("runner: fault run of %s: %v", t.Name(), err)
			return 1
		}
		rep.Runs = append(rep.Runs, run)
	}
	rep.LoadAfter = loadAvg()
	md := rep.markdown()
	fmt.Print(md)
	if err := writeFaultResults(rep, md); err != nil {
		log.Printf("runner: %v", err)
		return 1
	}
	status := 0
	for _, r := range rep.Runs {
		log.Printf("%s: SESSIONS LOST: %d of %d (%d stale answers during the run)",
			r.Target, r.Check.Lost, r.Check.Sessions, r.Summary.Stale)
		if r.Check.Lost > 0 || r.Check.Unverified > 0 || r.Summary.Stale > 0 {
			status = 2
		}
	}
	return status
}

// loadAvg is the machine's 1, 5 and 15 minute load averages: the
// machine is shared, and a run's numbers mean little without them.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func faultConfig() string {
	return fmt.Sprintf("%d clients, GET /write?v=… one after another on one keep-alive connection each, %s recorded after %s of warm-up, /status read every %s",
		*faultClients, *faultDuration, *faultWarmup, *faultPoll)
}

// faultRunOne runs the scenario against one target, from fresh processes
// to the final check. Every process it starts is killed when it returns,
// and on SIGINT or SIGTERM.
func faultRunOne(t faultTarget) (faultRun, error) {
	run := faultRun{Target: t.Name()}
	f := &faultEnv{}
	var err error
	if f.dir, err = os.MkdirTemp("", "sessionproxy-fault"); err != nil {
		return run, err
	}
	var once sync.Once
	cleanup := func() { once.Do(f.stop) }
	defer cleanup()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer func() {
		signal.Stop(sigs)
		close(sigs) // ends the goroutine below
	}()
	go func() {
		if _, ok := <-sigs; ok {
			log.Printf("runner: interrupted, stopping everything")
			cleanup()
			os.Exit(130)
		}
	}()

	f.proxyBin, f.backendBin = filepath.Join(f.dir, "sessionproxy"), filepath.Join(f.dir, "backend")
	for bin, pkg := range map[string]string{f.proxyBin: "./cmd/sessionproxy", f.backendBin: "./bench/backend"} {
		if out, err := goBuild(bin, pkg); err != nil {
			return run, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	for i := 1; i <= 2; i++ {
		n := &mcNode{ID: fmt.Sprintf("n%d", i), Addr: freeAddr()}
		if err := f.startNode(n); err != nil {
			return run, err
		}
		f.nodes = append(f.nodes, n)
	}
	addr, err := t.Start(f)
	if err != nil {
		return run, err
	}

	log.Printf("fault: %s on %s, %d clients, %s warm-up then %s recorded", t.Name(), addr, *faultClients, *faultWarmup, *faultDuration)
	l := startLoad(loadOptions{
		Addr: addr, Cookie: t.CookieName(), Clients: *faultClients,
		Warmup: *faultWarmup, Duration: *faultDuration, Timeout: *faultTimeout,
	})
	f.t0 = l.t0
	p := startPoller(f, t)
	stopSteps := make(chan struct{})
	stepsDone := make(chan struct{})
	go func() {
		defer close(stepsDone)
		f.runTimeline(f.timeline(t), stopSteps)
	}()
	l.wait()
	close(stopSteps)
	<-stepsDone

	clients := l.clientStates()
	run.Check = f.finalCheck(t, p, clients, addr)
	p.stop()
	run.Seconds = l.stats()
	run.Events = f.events
	// Inferred events are recorded when seen, after the time they name.
	sort.SliceStable(run.Events, func(i, j int) bool { return run.Events[i].T < run.Events[j].T })
	run.Catchups = p.catchups
	run.StatusErrors = p.failures
	run.FinalStatus = p.last
	run.Clients = clients
	run.Summary = summarizeFault(run, f.timeline(t))
	for _, name := range []string{"sessionproxy", "sessionproxy-fresh"} {
		if data, err := os.ReadFile(filepath.Join(f.dir, name+".log")); err == nil {
			run.ProxyLog += "## " + name + "\n" + string(data)
		}
	}
	return run, nil
}

// poller reads the target's status every -fault-poll and records each
// node's and backend's state changes as events.
type poller struct {
	f        *faultEnv
	t        faultTarget
	quit     chan struct{}
	done     chan struct{}
	mu       sync.Mutex // protects the fields below
	last     *targetStatus
	failures int
	catchups []catchup
}

// catchup is one node's return, as the target's status showed it.
type catchup struct {
	Node           string  `json:"node"`
	CatchingUpSeen bool    `json:"catching_up_seen"` // false: over between two polls
	UpAt           float64 `json:"up_at"`            // s from the start of recording
	Ms             int64   `json:"ms"`               // last_catchup_ms
	Replayed       int64   `json:"handoff_replayed"` // total so far
	Copied         int64   `json:"copied"`           // total so far
}

func startPoller(f *faultEnv, t faultTarget) *poller {
	p := &poller{f: f, t: t, quit: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *poller) stop() {
	close(p.quit)
	<-p.done
}

func (p *poller) status() *targetStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *poller) run() {
	defer close(p.done)
	tick := time.NewTicker(*faultPoll)
	defer tick.Stop()
	var prev *targetStatus
	for {
		st, err := p.t.Status()
		at := time.Now()
		p.mu.Lock()
		if err != nil {
			p.failures++
		} else if st != nil {
			p.changes(prev, st, at)
			prev, p.last = st, st
		}
		p.mu.Unlock()
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
	}
}

// changes records what moved between two statuses.
func (p *poller) changes(prev, st *targetStatus, at time.Time) {
	if prev == nil {
		return
	}
	for i, n := range st.Memcached {
		if i >= len(prev.Memcached) || n.State == prev.Memcached[i].State {
			continue
		}
		was := prev.Memcached[i]
		note := fmt.Sprintf("was %s; handoff_pending %d", was.State, n.HandoffPending)
		switch n.State {
		case "catching_up":
			p.f.event(at, n.ID+" catching_up", "observed", note)
		case "up":
			if n.Catchups == 0 && n.HandoffReplayed == 0 {
				// A target that copies nothing back (the classic stack):
				// the node just answers again.
				p.f.event(at, n.ID+" up", "observed", "answers again; the target copies nothing back to it")
				continue
			}
			c := catchup{Node: n.ID, CatchingUpSeen: was.State == "catching_up", UpAt: at.Sub(p.f.t0).Seconds(),
				Ms: n.LastCatchupMs, Replayed: n.HandoffReplayed, Copied: n.Copied}
			p.catchups = append(p.catchups, c)
			if !c.CatchingUpSeen {
				// The catch-up began and ended between two polls: its
				// start is known from its length.
				p.f.event(at.Add(-time.Duration(n.LastCatchupMs)*time.Millisecond), n.ID+" catching_up", "inferred",
					fmt.Sprintf("not seen by the %s poll: up at the next one, last_catchup_ms %d", *faultPoll, n.LastCatchupMs))
			}
			p.f.event(at, n.ID+" up", "observed",
				fmt.Sprintf("catch-up %d ms; handoff_replayed %d, copied %d in total", n.LastCatchupMs, n.HandoffReplayed, n.Copied))
		case "down":
			if p.f.provoked(n.ID, at) {
				p.f.event(at, n.ID+" down", "observed", note)
			} else {
				// Nothing the runner did explains it: a finding of its own.
				p.f.event(at, n.ID+" down (no fault)", "observed", note+"; no fault injected on "+n.ID+" in the 2 s before")
			}
		default:
			p.f.event(at, n.ID+" "+n.State, "observed", note)
		}
	}
	for i, b := range st.Backends {
		if i >= len(prev.Backends) || b.Up == prev.Backends[i].Up {
			continue
		}
		state := "out"
		if b.Up {
			state = "back"
		}
		p.f.event(at, fmt.Sprintf("backend %d %s", i+1, state), "observed", b.URL)
	}
}

// checkResult is the round trip's verdict: after the run n1 is killed
// (the second node to die, after the catch-ups) and each client's session
// is read back through a fresh proxy, from n2 alone.
type checkResult struct {
	NodesUp        bool     `json:"nodes_up"` // every node was up before n1 was killed
	WaitedMs       int64    `json:"waited_ms"`
	Sessions       int      `json:"sessions"` // clients holding a session cookie
	Kept           int      `json:"kept"`
	Lost           int      `json:"lost"`       // answered, without the client's last write
	Unverified     int      `json:"unverified"` // no 2xx answer
	Details        []string `json:"details,omitempty"`
	OriginalKept   int      `json:"original_kept"` // the same check through the proxy that served the run
	OriginalLost   int      `json:"original_lost"`
	OriginalUnver  int      `json:"original_unverified"`
	FreshProxyNote string   `json:"fresh_proxy_note,omitempty"`
}

// maxDetails bounds the lost sessions listed by name.
const maxDetails = 20

// finalCheck waits for the nodes, kills n1 and reads every client's
// session through a fresh proxy and through the one at runAddr that served
// the run (whose hot tier still holds them).
func (f *faultEnv) finalCheck(t faultTarget, p *poller, clients []clientState, runAddr string) checkResult {
	var res checkResult
	start := time.Now()
	// The catch-ups must be over before the second node dies; a node that
	// never comes back is a finding, so the wait is bounded and reported.
	for deadline := start.Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(*faultPoll) {
		if st := p.status(); st != nil && allUp(st) {
			res.NodesUp = true
			break
		}
	}
	res.WaitedMs = time.Since(start).Milliseconds()
	at := time.Now()
	err := kill(f.nodes[0].cmd)
	note := "the second node to die: every session must now be read from n2 alone"
	if err != nil {
		note = "n1 was not running: " + err.Error()
	}
	f.event(at, "kill n1 (final check)", "action", note)

	for _, c := range clients {
		if c.Cookie != "" {
			res.Sessions++
		}
	}
	fresh, err := t.StartFresh(f)
	if err != nil {
		res.FreshProxyNote = err.Error()
		res.Unverified = res.Sessions
		return res
	}
	for _, c := range clients {
		if c.Cookie == "" {
			continue
		}
		switch verdict, detail := peekCheck(fresh, c); verdict {
		case "kept":
			res.Kept++
		case "lost":
			res.Lost++
			if len(res.Details) < maxDetails {
				res.Details = append(res.Details, detail)
			}
		default:
			res.Unverified++
			if len(res.Details) < maxDetails {
				res.Details = append(res.Details, detail)
			}
		}
		switch verdict, _ := peekCheck(runAddr, c); verdict {
		case "kept":
			res.OriginalKept++
		case "lost":
			res.OriginalLost++
		default:
			res.OriginalUnver++
		}
	}
	return res
}

func allUp(st *targetStatus) bool {
	for _, n := range st.Memcached {
		if n.State != "up" {
			return false
		}
	}
	return len(st.Memcached) > 0
}
