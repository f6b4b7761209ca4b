package proxy

import (
	"io"
	"os"
	"sync"
	"time"
)

// logBufferSize is the size of each of a logWriter's two buffers: about
// a thousand lines, written out in one system call.
const logBufferSize = 256 << 10

// logWriter takes whole lines from the request path into a buffer and
// writes them out from a goroutine of its own, so that a request never
// waits on the disk while there is room in the buffer: the goroutine
// writes when a buffer is half full and every second. Each line is
// appended whole and each buffer written whole in one call, so that a
// line is never split, even across a reopen.
//
// When both buffers are full (the disk cannot keep up) a request waits
// for room, as nginx's workers wait on their write(2): a line is never
// dropped, and the access log stays the complete record of what was
// served that logrotate and audits expect. A log on a file system that
// hangs therefore stalls requests once 512 KiB of lines are waiting.
type logWriter struct {
	mu     sync.Mutex
	room   sync.Cond // signalled when the goroutine has taken buf
	buf    []byte    // lines waiting, cap logBufferSize
	spare  []byte    // the goroutine's buffer, being written or empty
	closed bool      // no goroutine: Write writes at once

	out  io.Writer // the goroutine's; Write's once closed
	file *os.File  // out, when the log is a file; nil for standard error
	path string

	wake   chan struct{} // a buffer is half full
	reopen chan chan error
	sync   chan chan struct{} // Flush
	stop   chan struct{}
	done   chan struct{}
}

func newLogWriter(out io.Writer, file *os.File, path string) *logWriter {
	w := &logWriter{
		buf: make([]byte, 0, logBufferSize), spare: make([]byte, 0, logBufferSize),
		out: out, file: file, path: path,
		wake: make(chan struct{}, 1), reopen: make(chan chan error), sync: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
	w.room.L = &w.mu
	go w.run()
	return w
}

// openLogFile opens path for appending, creating it (mode 0640: client
// addresses are personal data) if need be.
func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Write adds one whole line. It does not keep p.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	for len(w.buf) > 0 && len(w.buf)+len(p) > cap(w.buf) && !w.closed {
		w.signal()
		w.room.Wait()
	}
	if w.closed {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= cap(w.buf)/2 {
		w.signal()
	}
	return len(p), nil
}

func (w *logWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *logWriter) run() {
	defer close(w.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-w.wake:
			w.flush()
		case <-t.C:
			w.flush()
		case reply := <-w.reopen:
			w.flush() // what came before the signal goes to the old file
			reply <- w.swapFile()
		case reply := <-w.sync:
			w.flush()
			close(reply)
		case <-w.stop:
			w.flush()
			return
		}
	}
}

// flush writes out what is waiting. Only the goroutine calls it.
func (w *logWriter) flush() {
	w.mu.Lock()
	lines := w.buf
	w.buf = w.spare[:0]
	w.room.Broadcast()
	w.mu.Unlock()
	if len(lines) > 0 {
		w.out.Write(lines) // a failed write has no one to tell but the log itself
	}
	w.mu.Lock()
	w.spare = lines[:0]
	w.mu.Unlock()
}

// swapFile opens the log's path anew and writes to it from now on; on
// failure it keeps the file open before.
func (w *logWriter) swapFile() error {
	if w.file == nil {
		return nil
	}
	f, err := openLogFile(w.path)
	if err != nil {
		return err
	}
	old := w.file
	w.mu.Lock()
	w.file, w.out = f, f
	w.mu.Unlock()
	return old.Close()
}

// Reopen writes out what is waiting to the file open now, then opens the
// log's path again (logrotate has renamed the file). If the path cannot
// be opened, the old file is kept and the error returned. Standard
// error is not reopened.
func (w *logWriter) Reopen() error {
	if w.file == nil {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case w.reopen <- reply:
		return <-reply
	case <-w.done:
		return nil
	}
}

// Flush writes out what is waiting now and returns once it is written.
func (w *logWriter) Flush() {
	reply := make(chan struct{})
	select {
	case w.sync <- reply:
		<-reply
	case <-w.done:
	}
}

// Close writes out what is waiting, stops the goroutine and closes the
// file (never standard error or a writer it was given). AccessLog calls
// it once no request can still write a line (AccessLog.Hold); a line
// written after it goes out at once to the writer it was given, or is
// lost with the closed file.
func (w *logWriter) Close() {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.room.Broadcast()
	// Lines added after the goroutine's last flush.
	if len(w.buf) > 0 {
		w.out.Write(w.buf)
		w.buf = w.buf[:0]
	}
	if w.file != nil {
		w.file.Close() // a failed close has lost nothing: every write went out whole
	}
}
