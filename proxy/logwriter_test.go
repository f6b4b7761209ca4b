package proxy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stalledDisk is a writer whose writes wait until it is released, as a
// disk that cannot keep up.
type stalledDisk struct {
	release chan struct{}
	mu      sync.Mutex
	b       bytes.Buffer
}

func (d *stalledDisk) Write(p []byte) (int, error) {
	<-d.release
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.Write(p)
}

// TestLogWriterWaitsWhenFull: with the disk stalled, writers fill both
// buffers and then wait (they are not dropped); once the disk moves,
// every line arrives whole.
func TestLogWriterWaitsWhenFull(t *testing.T) {
	d := &stalledDisk{release: make(chan struct{})}
	w := newLogWriter(d, nil, "")
	line := []byte(strings.Repeat("x", 99) + "\n")
	const lines = 3 * logBufferSize / 100 // more than both buffers hold
	done := make(chan struct{})
	go func() {
		for i := 0; i < lines; i++ {
			w.Write(line)
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("every line was taken while the disk was stalled: lines beyond the buffers were dropped or grew them")
	case <-time.After(300 * time.Millisecond):
	}
	close(d.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writers still waiting after the disk moved")
	}
	w.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	if got := d.b.Len(); got != lines*len(line) {
		t.Fatalf("%d bytes written, want %d", got, lines*len(line))
	}
	for _, l := range strings.Split(strings.TrimSuffix(d.b.String(), "\n"), "\n") {
		if len(l) != 99 {
			t.Fatalf("a line split or merged: %d bytes", len(l))
		}
	}
}

// TestLogWriterReopen: lines before Reopen are in the renamed file, the
// rest in a new one at the path; a path that cannot be opened keeps the
// old file and says why.
func TestLogWriterReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "access.log")
	os.Mkdir(filepath.Dir(path), 0o755)
	l, err := OpenAccessLog("combined", path)
	if err != nil {
		t.Fatal(err)
	}
	w := l.out
	fmt.Fprintf(w, "one\n")
	os.Rename(path, path+".1")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "two\n")
	// The directory goes: the path cannot be opened again.
	os.Rename(filepath.Dir(path), filepath.Join(dir, "moved"))
	if err := l.Reopen(); err == nil {
		t.Fatal("Reopen of a path in a missing directory succeeded")
	}
	fmt.Fprintf(w, "three\n")
	l.Close()
	for f, want := range map[string]string{
		filepath.Join(dir, "moved", "access.log.1"): "one\n",
		filepath.Join(dir, "moved", "access.log"):   "two\nthree\n",
	} {
		if b, _ := os.ReadFile(f); string(b) != want {
			t.Errorf("%s holds %q, want %q", f, b, want)
		}
	}
}
