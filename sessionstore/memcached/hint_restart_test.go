package memcached

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/apptest"
	"sessionproxy/sessionstore"
)

// hintedStore opens a Memcached over c keeping its hints in dir.
func hintedStore(t *testing.T, c *cluster, dir string, max int64, logs *apptest.Output) *Memcached {
	t.Helper()
	m, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: c.nodes(), StateDir: dir, HintFileMax: max,
		ProbeInterval: 20 * time.Millisecond, Timeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func versionOf(t *testing.T, val []byte) uint64 {
	t.Helper()
	mt, err := peek(val)
	if err != nil {
		t.Fatal(err)
	}
	return mt.version
}

// waitState waits until n is in state st.
func waitState(t *testing.T, n *node, st sessionstore.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.load() != st {
		if time.Now().After(deadline) {
			t.Fatalf("node %s is %v, want %v", n.ID, n.load(), st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The case: n2 misses a write (frozen), the proxy stops, n1 (the
// only replica with the write) stops too, n2 comes back with its stale
// copy and a new proxy starts. The new proxy must replay the hint from
// the file before n2 serves reads: without it, n2 serves version 1.
func TestHintSurvivesRestartWhileTheSourceIsDown(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	var logs apptest.Output
	m := hintedStore(t, c, dir, 0, &logs)
	m.Reconciled()
	id := sessionstore.AppendNewID(nil)
	if err := m.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	c.n2.Freeze()
	tomb := sessionstore.Session{Deleted: true, Version: 2, Touched: time.Now().Unix(), Expires: time.Now().Unix() + 3600}
	if err := m.PutIfNewer(id, tomb.AppendEncode(nil)); err != nil {
		t.Fatal(err)
	}
	if n := m.nodes[1].handoff.len(); n != 1 {
		t.Fatalf("n2 has %d hints, want 1", n)
	}
	m.Close()
	c.n1.Stop()
	c.n2.Thaw()

	m2 := hintedStore(t, c, dir, 0, &logs)
	m2.Reconciled()
	n2 := m2.nodes[1]
	waitState(t, n2, sessionstore.StateUp)
	val, err := m2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if v := versionOf(t, val); v != 2 {
		t.Fatalf("after the restart n2 serves version %d, want 2 (the tombstone it missed)\n%s", v, logs.String())
	}
	if !strings.Contains(logs.String(), "hint file adopted") {
		t.Fatalf("no adoption logged:\n%s", logs.String())
	}
	// The replayed file is emptied; the orphan is gone.
	files, _ := filepath.Glob(filepath.Join(dir, "hints", "n2.*.hints"))
	if len(files) != 1 {
		t.Fatalf("n2's hint files: %v, want this instance's only", files)
	}
	if st, _ := os.Stat(files[0]); st.Size() != hintHeaderSize {
		t.Fatalf("n2's hint file holds %d bytes after its replay, want the header only", st.Size())
	}
}

// A file damaged in the middle and cut short at the end is reported with
// its name and offsets, and what reads of it is replayed.
func TestCorruptHintFileIsReportedAndTheRestUsed(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "hints"), 0o700)
	ids := [][]byte{sessionstore.AppendNewID(nil), sessionstore.AppendNewID(nil), sessionstore.AppendNewID(nil)}
	data := appendHintHeader(nil, 0)
	var offs []int
	for _, id := range ids {
		offs = append(offs, len(data))
		data = appendHintRecord(data, id, encodedSession(id, 5))
	}
	data[offs[1]+30] ^= 0xff                        // the second record damaged
	data = append(data, data[offs[0]:offs[1]-4]...) // and a copy of the first cut short
	path := filepath.Join(dir, "hints", "n2.deadbeef.hints")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs apptest.Output
	m := hintedStore(t, c, dir, 0, &logs)
	m.Reconciled()
	waitState(t, m.nodes[1], sessionstore.StateUp)
	for i, id := range ids {
		c, err := m.nodes[1].pipe.Get(m.appendKey(nil, id))
		c.Release()
		if (err == nil) != (i != 1) {
			t.Errorf("session %d on n2: %v", i, err)
		}
	}
	out := logs.String()
	for _, want := range []string{"file=" + path, "offset=" + itoa(offs[1]), "corrupt record", "truncated record"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the adopted file is still there: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Past its bound the hint file takes no more records and marks the node
// for a full copy, and the mark survives a restart: the new instance
// keeps n2 from serving reads until it has copied everything from n1.
func TestHintFileOverItsBoundMarksAFullCopyThatSurvivesARestart(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	var logs apptest.Output
	m := hintedStore(t, c, dir, 1024, &logs)
	m.Reconciled()
	c.n2.Freeze()
	var ids [][]byte
	for range 20 {
		id := sessionstore.AppendNewID(nil)
		ids = append(ids, id)
		if err := m.Put(id, encodedSession(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(logs.String(), "missed writes no longer recorded") {
		t.Fatalf("overflow not logged:\n%s", logs.String())
	}
	m.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "hints", "n2.*.hints"))
	if len(files) != 1 {
		t.Fatalf("hint files of n2: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if flags, ok := decodeHintHeader(b); !ok || flags&hintFlagFullCopy == 0 || len(b) > 1024 {
		t.Fatalf("hint file: flags %d ok %v size %d; want the full-copy mark within 1024 bytes", flags, ok, len(b))
	}
	c.n2.Thaw()
	m2 := hintedStore(t, c, dir, 1024, &logs)
	m2.Reconciled()
	waitState(t, m2.nodes[1], sessionstore.StateUp)
	for _, id := range ids {
		c, err := m2.nodes[1].pipe.Get(m2.appendKey(nil, id))
		c.Release()
		if err != nil {
			t.Fatalf("n2 lacks a session after its full copy: %v\n%s", err, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "full_copy=true") {
		t.Fatalf("no full copy logged:\n%s", logs.String())
	}
	b, _ = os.ReadFile(filepath.Join(dir, "hints", filepath.Base(m2.nodes[1].handoff.path())))
	if flags, _ := decodeHintHeader(b); flags != 0 {
		t.Fatalf("the mark is still set after the full copy")
	}
}

// With the other replica down, a node marked for a full copy waits for it
// and serves no reads meanwhile.
func TestMarkedNodeWaitsForItsFullCopy(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	var logs apptest.Output
	m := hintedStore(t, c, dir, 512, &logs)
	m.Reconciled()
	c.n2.Freeze()
	for range 10 {
		id := sessionstore.AppendNewID(nil)
		if err := m.Put(id, encodedSession(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	c.n1.Freeze()
	c.n2.Thaw()
	m2 := hintedStore(t, c, dir, 512, &logs)
	m2.Reconciled()
	time.Sleep(300 * time.Millisecond)
	if st := m2.nodes[1].load(); st == sessionstore.StateUp {
		t.Fatalf("n2 serves reads with writes it missed and n1 away:\n%s", logs.String())
	}
	c.n1.Thaw()
	waitState(t, m2.nodes[1], sessionstore.StateUp)
}

// Two instances share a state directory: each one's files are locked and
// left alone by the other; an instance's orphaned file (it stopped with
// hints pending) is adopted by the next instance to start.
func TestSharedStateDirAdoptsOnlyOrphans(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	var logs apptest.Output
	a := hintedStore(t, c, dir, 0, &logs)
	b := hintedStore(t, c, dir, 0, &logs)
	a.Reconciled()
	b.Reconciled()
	c.n2.Freeze()
	ida, idb := sessionstore.AppendNewID(nil), sessionstore.AppendNewID(nil)
	if err := a.Put(ida, encodedSession(ida, 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(idb, encodedSession(idb, 1)); err != nil {
		t.Fatal(err)
	}
	a.Close() // a's file stays: it holds a hint
	c3 := hintedStore(t, c, dir, 0, &logs)
	if got := c3.nodes[1].handoff.len(); got != 1 {
		t.Fatalf("the new instance holds %d hints for n2, want a's one (b's file is b's)", got)
	}
	if _, err := os.Stat(b.nodes[1].handoff.path()); err != nil {
		t.Fatalf("b's file: %v", err)
	}
	if _, err := os.Stat(a.hintDir()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "hints", "n2.*.hints"))
	if len(files) != 2 {
		t.Fatalf("n2's files %v, want b's and the new instance's", files)
	}
	c.n2.Thaw()
	waitState(t, c3.nodes[1], sessionstore.StateUp)
	cl, err := c3.nodes[1].pipe.Get(c3.appendKey(nil, ida))
	cl.Release()
	if err != nil {
		t.Fatalf("n2 lacks the write a's hint held: %v", err)
	}
}

// An unusable state directory is an error at start.
func TestUnwritableStateDir(t *testing.T) {
	c := startCluster(t)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	_, err := NewMemcached(sessionstore.MemcachedOptions{Nodes: c.nodes(), StateDir: filepath.Join(file, "sub")})
	if err == nil || !strings.Contains(err.Error(), "state_dir") {
		t.Fatalf("NewMemcached with a state_dir under a file: %v", err)
	}
}

// A session written many times while its node is away fills the file with
// records that supersede each other: the file is compacted to the newest
// one instead of marking the node for a full copy, and that one is what
// the node gets after a restart.
func TestHintFileCompactsSupersededRecords(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	var logs apptest.Output
	m := hintedStore(t, c, dir, 1024, &logs)
	m.Reconciled()
	c.n2.Freeze()
	id := sessionstore.AppendNewID(nil)
	for v := uint64(1); v <= 100; v++ {
		if err := m.Put(id, encodedSession(id, v)); err != nil {
			t.Fatal(err)
		}
	}
	n2 := m.nodes[1]
	if n2.handoff.full() {
		t.Fatalf("n2 marked for a full copy by one session's rewrites:\n%s", logs.String())
	}
	if st, err := os.Stat(n2.handoff.path()); err != nil || st.Size() > 1024 {
		t.Fatalf("hint file %v %v", st, err)
	}
	m.Close()
	c.n1.Stop()
	c.n2.Thaw()
	m2 := hintedStore(t, c, dir, 1024, &logs)
	m2.Reconciled()
	waitState(t, m2.nodes[1], sessionstore.StateUp)
	val, err := m2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if v := versionOf(t, val); v != 100 {
		t.Fatalf("n2 serves version %d, want 100", v)
	}
}

// On a full disk the hint file takes no more records: the node is marked
// for a full copy, and the mark, written in place over the header, is on
// disk for the next instance. It needs a small file system to fill: a
// 64 KiB tmpfs, which only root may mount (skipped otherwise, saying so).
func TestHintFileOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			// CI runs as root: a skip there would hide the full-disk path.
			t.Fatalf("cannot mount a small tmpfs to fill: %v %s", err, out)
		}
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	c := startCluster(t)
	var logs apptest.Output
	m := hintedStore(t, c, dir, 0, &logs)
	m.Reconciled()
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err = filler.Write(make([]byte, 4096)); err == nil; _, err = filler.Write(make([]byte, 4096)) {
	}
	filler.Close()
	c.n2.Freeze()
	var ids [][]byte
	for range 100 { // 100 records of some 80 bytes: more than the page the file has
		id := sessionstore.AppendNewID(nil)
		ids = append(ids, id)
		if err := m.Put(id, encodedSession(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(logs.String(), "no space left on device") || !m.nodes[1].handoff.full() {
		t.Fatalf("a full disk did not mark n2 for a full copy:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "could not be written either") {
		t.Fatalf("the mark did not reach the disk:\n%s", logs.String())
	}
	m.Close()
	os.Remove(filepath.Join(dir, "filler"))
	c.n2.Thaw()
	m2 := hintedStore(t, c, dir, 0, &logs)
	m2.Reconciled()
	waitState(t, m2.nodes[1], sessionstore.StateUp)
	if !strings.Contains(logs.String(), "full_copy=true") {
		t.Fatalf("no full copy after the restart:\n%s", logs.String())
	}
	for _, id := range ids {
		cl, err := m2.nodes[1].pipe.Get(m2.appendKey(nil, id))
		cl.Release()
		if err != nil {
			t.Fatalf("n2 lacks a session written while the disk was full: %v", err)
		}
	}
}

// A reload: the new store starts while the old one still holds its hint
// files, then the old one closes with hints pending. The new store adopts
// them before the node's catch-up, so the node does not serve reads
// without them.
func TestReloadedStoreAdoptsTheOldOnesHints(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	var logs apptest.Output
	old := hintedStore(t, c, dir, 0, &logs)
	old.Reconciled()
	id := sessionstore.AppendNewID(nil)
	if err := old.Put(id, encodedSession(id, 1)); err != nil {
		t.Fatal(err)
	}
	c.n2.Stop() // killed, not frozen: a frozen node would take the write queued in its socket when thawed
	if err := old.Put(id, encodedSession(id, 2)); err != nil {
		t.Fatal(err)
	}
	cur := hintedStore(t, c, dir, 0, &logs) // n2 is away: down from its first probe
	cur.Reconciled()
	if cur.nodes[1].handoff.len() != 0 {
		t.Fatal("the new store adopted a file the old one still holds")
	}
	old.Close()
	c.n1.Stop()
	c.n2.Restart() // empty: it holds version 2 only if the hint reached it
	waitState(t, cur.nodes[1], sessionstore.StateUp)
	cl, err := cur.nodes[1].pipe.Get(cur.appendKey(nil, id))
	if err != nil {
		t.Fatalf("n2 lacks the write the old store's hint held: %v", err)
	}
	v := versionOf(t, cl.Value())
	cl.Release()
	if v != 2 {
		t.Fatalf("n2 serves version %d after the reload, want 2:\n%s", v, logs.String())
	}
}
