package memcached

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The hint files of a state directory. Each instance writes its own, one per
// node, named <node ID>.<instance token>.hints under <state_dir>/hints, and
// holds them locked (flock) while it runs. A file nobody holds is an
// orphan: its instance stopped or crashed with hints not yet replayed. A
// starting instance adopts every orphan of its nodes before any node
// serves reads, and a running one looks for orphans again every
// adoptInterval (an instance sharing the directory that died, or the store
// a reload replaced): it copies their newest hints into its own files and
// removes them.

const hintSuffix = ".hints"

// hintSyncInterval is how often new hint records are fsynced: a hint
// reaches the disk within this after the write it records, which is the
// window an operating system crash or power loss (not a crash of the
// proxy: the kernel has the bytes) can cost.
const hintSyncInterval = 100 * time.Millisecond

// adoptInterval is how often a running instance looks for orphaned hint
// files.
var adoptInterval = 10 * time.Second

// hintDir returns the directory of the hint files.
func (m *Memcached) hintDir() string { return filepath.Join(m.opts.StateDir, "hints") }

// openHints creates this instance's hint files and adopts the orphans in
// the state directory. An error means the directory cannot be used.
func (m *Memcached) openHints() error {
	dir := m.hintDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state_dir %s cannot be used (it keeps what a memcached node missed while down; set state_dir to a writable directory): %w", m.opts.StateDir, err)
	}
	var raw [8]byte
	rand.Read(raw[:])
	m.hintToken = hex.EncodeToString(raw[:])
	for _, n := range m.nodes {
		path := filepath.Join(dir, url.PathEscape(n.ID)+"."+m.hintToken+hintSuffix)
		l, err := createHintLog(path, m.opts.HintFileMax)
		if err != nil {
			m.closeHints()
			return fmt.Errorf("state_dir %s cannot be used: creating a hint file: %w", m.opts.StateDir, err)
		}
		n.handoff.log = l
	}
	m.adopt(nil)
	return nil
}

// closeHints closes this instance's hint files, removing the empty ones.
func (m *Memcached) closeHints() {
	for _, n := range m.nodes {
		if err := n.handoff.closeLog(); err != nil {
			m.logger().Warn("hint file: closing", "node", n.ID, "error", err)
		}
	}
}

// syncHints fsyncs the hint files every hintSyncInterval until Close.
func (m *Memcached) syncHints() {
	defer m.wg.Done()
	t := time.NewTicker(hintSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-m.closed:
			return
		case <-t.C:
		}
		for _, n := range m.nodes {
			if err := n.handoff.sync(); err != nil {
				m.logger().Error("hint file: fsync failed", "node", n.ID, "file", n.handoff.path(), "error", err)
			}
		}
	}
}

// adopt takes over the orphaned hint files of only (of every node when
// nil) and reports how many hints it found.
func (m *Memcached) adopt(only *node) int {
	dir := m.hintDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		m.logger().Warn("hint files: cannot list the state directory", "dir", dir, "error", err)
		return 0
	}
	found := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, hintSuffix+".compact") {
			removeOrphan(filepath.Join(dir, name)) // a compaction cut short
			continue
		}
		id, token, ok := parseHintName(name)
		if !ok || token == m.hintToken {
			continue
		}
		n := m.nodeByID(id)
		if n == nil && only == nil {
			m.logger().Warn("hint file of a node not in the configuration: left alone", "file", filepath.Join(dir, name), "node", id)
		}
		if n == nil || only != nil && n != only {
			continue
		}
		found += m.adoptFile(n, filepath.Join(dir, name))
	}
	return found
}

// removeOrphan removes the file at path unless a running instance holds
// it locked.
func removeOrphan(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if lockFile(f) == nil && sameFile(f, path) {
		os.Remove(path)
	}
}

// parseHintName splits a hint file's name into its node ID and instance
// token.
func parseHintName(name string) (id, token string, ok bool) {
	base, ok := strings.CutSuffix(name, hintSuffix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(base, '.')
	if i <= 0 {
		return "", "", false
	}
	id, err := url.PathUnescape(base[:i])
	return id, base[i+1:], err == nil
}

func (m *Memcached) nodeByID(id string) *node {
	for _, n := range m.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// adoptFile copies the hints of the orphaned file at path into n's own
// hint file and removes it, unless a running instance holds it. What
// cannot be read of it is reported, and the rest used.
func (m *Memcached) adoptFile(n *node, path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.logger().Warn("hint file: cannot open it to adopt it", "file", path, "error", err)
		}
		return 0
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		if !errors.Is(err, errLocked) {
			m.logger().Warn("hint file: cannot lock it to adopt it", "file", path, "error", err)
		}
		return 0 // a running instance's own
	}
	if !sameFile(f, path) {
		return 0 // removed or replaced by its owner before we locked it
	}
	data, unmap, err := mapFile(f)
	if err == nil {
		defer unmap()
	} else {
		m.logger().Error("hint file: cannot read it; the node gets a full copy instead", "file", path, "error", err)
		data = nil
	}
	flags, ok := decodeHintHeader(data)
	if !ok && len(data) > 0 {
		// The mark may have been there: assume the worst.
		m.logger().Error("hint file: corrupt header; the node gets a full copy", "file", path, "offset", 0)
		flags = hintFlagFullCopy
	}
	if err != nil {
		flags = hintFlagFullCopy
	}
	// The newest record of each ID; the values stay in data.
	type record struct {
		val     []byte
		version uint64
	}
	newest := map[string]record{}
	var problems []hintProblem
	if len(data) > hintHeaderSize {
		problems = scanHints(data[hintHeaderSize:], func(_ int64, id, val []byte) {
			mt, _ := peek(val)
			if r, ok := newest[string(id)]; !ok || mt.version >= r.version {
				newest[string(id)] = record{val, mt.version}
			}
		})
	}
	for _, p := range problems {
		m.logger().Error("hint file: part of it cannot be read; the rest is used", "file", path,
			"offset", p.off, "bytes", p.len, "error", p.err)
	}
	for id, r := range newest {
		m.addHint(n, []byte(id), r.val)
	}
	if flags&hintFlagFullCopy != 0 {
		n.handoff.mu.Lock()
		err := n.handoff.markFull(errors.New("adopted a hint file marked for a full copy"))
		n.handoff.mu.Unlock()
		m.logger().Warn("memcached node marked for a full copy", "node", n.ID, "from", path, "reason", err)
	}
	if err := n.handoff.sync(); err != nil {
		// Keep the orphan: its hints are not safely in our file.
		m.logger().Error("hint file: fsync failed; the adopted file is kept", "file", n.handoff.path(), "error", err)
		return len(newest)
	}
	os.Remove(path) // still locked: no one else adopts it meanwhile
	m.logger().Info("hint file adopted", "file", path, "node", n.ID, "hints", len(newest),
		"full_copy", flags&hintFlagFullCopy != 0)
	return len(newest)
}
