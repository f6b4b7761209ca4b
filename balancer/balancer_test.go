package balancer

import (
	"strings"
	"testing"
	"time"
)

func backends(names ...string) []*Backend {
	var bs []*Backend
	for _, n := range names {
		w := 1
		if i := strings.IndexByte(n, '*'); i >= 0 {
			w = int(n[i+1] - '0')
			n = n[:i]
		}
		bs = append(bs, &Backend{URL: n, Weight: w})
	}
	return bs
}

func picks(t *testing.T, b Balancer, n int) string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		p := b.Pick(nil)
		if p == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, p.URL)
	}
	return strings.Join(out, ",")
}

func TestRoundRobinOrder(t *testing.T) {
	bs := backends("a", "b", "c")
	rr := NewRoundRobin(bs)
	if got, want := picks(t, rr, 6), "a,b,c,a,b,c"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
	bs[1].checkDown.Store(true)
	if got := picks(t, rr, 4); strings.Contains(got, "b") {
		t.Fatalf("down backend b picked: %s", got)
	}
	bs[0].checkDown.Store(true)
	bs[2].checkDown.Store(true)
	if got := rr.Pick(nil); got != nil {
		t.Fatalf("Pick with all down = %s, want nil", got.URL)
	}
}

func TestRoundRobinSkipsTried(t *testing.T) {
	bs := backends("a", "b")
	rr := NewRoundRobin(bs)
	for i := 0; i < 4; i++ {
		if got := rr.Pick([]*Backend{bs[0]}); got != bs[1] {
			t.Fatalf("Pick(tried a) = %v, want b", got)
		}
	}
	if got := rr.Pick(bs); got != nil {
		t.Fatalf("Pick(all tried) = %s, want nil", got.URL)
	}
}

func TestWeightedIsSmooth(t *testing.T) {
	w := NewWeighted(backends("a*3", "b*1"))
	if got, want := picks(t, w, 8), "a,a,b,a,a,a,b,a"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
	w = NewWeighted(backends("a*5", "b*1", "c*1"))
	// nginx's documented sequence for weights 5,1,1.
	if got, want := picks(t, w, 7), "a,a,b,a,c,a,a"; got != want {
		t.Fatalf("picks = %s, want %s", got, want)
	}
}

func TestWeightedSkipsDown(t *testing.T) {
	bs := backends("a*3", "b*1")
	w := NewWeighted(bs)
	bs[0].checkDown.Store(true)
	if got := picks(t, w, 3); got != "b,b,b" {
		t.Fatalf("picks = %s, want b,b,b", got)
	}
}

func TestLeastConn(t *testing.T) {
	bs := backends("a", "b", "c")
	lc := NewLeastConn(bs)
	bs[0].Begin()
	bs[0].Begin()
	bs[1].Begin()
	if got := lc.Pick(nil); got != bs[2] {
		t.Fatalf("Pick = %s, want c (no requests in flight)", got.URL)
	}
	bs[2].Begin()
	bs[2].Begin()
	if got := lc.Pick(nil); got != bs[1] {
		t.Fatalf("Pick = %s, want b", got.URL)
	}
	// Ties are shared out rather than always going to the first.
	bs[0].End()
	bs[0].End()
	bs[1].End()
	bs[2].End()
	bs[2].End()
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		seen[lc.Pick(nil).URL]++
	}
	if len(seen) != 3 {
		t.Fatalf("ties went to %v, want all three", seen)
	}
	bs[1].checkDown.Store(true)
	for i := 0; i < 10; i++ {
		if lc.Pick(nil) == bs[1] {
			t.Fatal("down backend picked")
		}
	}
}

func TestLeastConnWeighted(t *testing.T) {
	bs := backends("a*4", "b*1")
	lc := NewLeastConn(bs)
	for i := 0; i < 3; i++ {
		bs[0].Begin()
	}
	bs[1].Begin()
	// a: 3/4 in flight per weight, b: 1/1.
	if got := lc.Pick(nil); got != bs[0] {
		t.Fatalf("Pick = %s, want a", got.URL)
	}
}

func TestPoolBackupOnlyWhenRegularOut(t *testing.T) {
	bs := backends("a", "b", "spare")
	bs[2].Backup = true
	p, err := NewPool("round_robin", bs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := picks(t, p, 4); got != "a,b,a,b" {
		t.Fatalf("picks = %s, want a,b,a,b", got)
	}
	bs[0].checkDown.Store(true)
	if got := picks(t, p, 2); got != "b,b" {
		t.Fatalf("picks = %s, want b,b", got)
	}
	bs[1].checkDown.Store(true)
	if got := picks(t, p, 2); got != "spare,spare" {
		t.Fatalf("picks = %s, want spare,spare", got)
	}
	bs[0].checkDown.Store(false)
	if got := picks(t, p, 2); got != "a,a" {
		t.Fatalf("picks = %s, want a,a after a came back", got)
	}
}

func TestNewPoolUnknownPolicy(t *testing.T) {
	if _, err := NewPool("ip_hash", backends("a"), nil); err == nil {
		t.Fatal("NewPool(ip_hash) succeeded")
	}
}

func TestPassiveHealth(t *testing.T) {
	h := &Health{MaxFails: 2, FailTimeout: 150 * time.Millisecond}
	bs := backends("a")
	if _, err := NewPool("round_robin", bs, h); err != nil {
		t.Fatal(err)
	}
	a := bs[0]
	a.Fail()
	if !a.Available() {
		t.Fatal("out after 1 of 2 failures")
	}
	a.Succeed()
	a.Fail()
	if !a.Available() {
		t.Fatal("a success did not reset the count")
	}
	a.Fail()
	if a.Available() {
		t.Fatal("still in after 2 consecutive failures")
	}
	time.Sleep(200 * time.Millisecond)
	if !a.Available() {
		t.Fatal("not tried again after fail_timeout")
	}
	a.Fail() // nginx: the first failure after coming back takes it out again
	if a.Available() {
		t.Fatal("a failure right after fail_timeout did not take it out again")
	}
	time.Sleep(200 * time.Millisecond)
	a.Succeed()
	if !a.Available() || a.Fails() != 0 {
		t.Fatal("success did not bring it back")
	}
}

func TestPassiveHealthWindow(t *testing.T) {
	h := &Health{MaxFails: 2, FailTimeout: 100 * time.Millisecond}
	bs := backends("a")
	NewPool("round_robin", bs, h)
	bs[0].Fail()
	time.Sleep(150 * time.Millisecond)
	bs[0].Fail() // the first failure fell out of the window
	if !bs[0].Available() {
		t.Fatal("failures further apart than fail_timeout took the backend out")
	}
}

func TestMaxFailsZeroNeverTakesOut(t *testing.T) {
	bs := backends("a")
	NewPool("round_robin", bs, &Health{MaxFails: 0, FailTimeout: time.Second})
	for i := 0; i < 10; i++ {
		bs[0].Fail()
	}
	if !bs[0].Available() {
		t.Fatal("max_fails 0 took the backend out")
	}
}

func BenchmarkRoundRobinPick(b *testing.B) {
	rr := NewRoundRobin(backends("a", "b", "c"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rr.Pick(nil)
		}
	})
}

func TestPoliciesAllBuild(t *testing.T) {
	if len(Policies) != len(policies) {
		t.Fatalf("Policies lists %d names, policies has %d", len(Policies), len(policies))
	}
	for _, name := range Policies {
		if _, err := NewPool(name, []*Backend{{URL: "http://127.0.0.1:1"}}, nil); err != nil {
			t.Errorf("NewPool(%q): %v", name, err)
		}
	}
}
