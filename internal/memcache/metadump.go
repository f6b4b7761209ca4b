package memcache

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Listing a node's keys with memcached's lru_crawler metadump. The dump is
// read as a stream and each key handed on as it arrives, never held as a
// node's whole key list: memory stays bounded however many sessions a node
// holds (the full copy spools the keys it needs to a temporary file).
//
// The dump walks memcached's hash table ("metadump hash"), not its LRUs
// ("metadump all"): an item that moves between LRUs while they are walked
// (read twice, it goes from COLD to WARM) can be missed by "all", more
// often the longer the dump lasts, and this dump lasts as long as the copy.
// Measured with 150,000 keys read at random during a copy-paced listing:
// "all" missed 8,800 to 14,000 of them, "hash" none. A missed session
// would be held by one replica only after its node "caught up", and lost
// with the next failure. What "hash" costs instead: memcached does not
// grow its hash table while the dump runs, and behind a reader as slow as
// a copy the node's gets waited up to about 45 ms (6 ms with "all") on
// memcached 1.6.18, within the default 100 ms timeout.

// MetadumpMaxLine is the longest line Metadump accepts (its reader's
// buffer): a line names one key (at most 250 bytes, 750 URL-escaped) and a
// few fields.
const MetadumpMaxLine = 64 << 10

// Metadump calls fn with every key the server at addr holds, in the order
// lru_crawler metadump lists them, each as soon as its line is read; key
// is valid only during the call (it is decoded into one reused buffer, so
// that the keys a caller skips cost no allocation). It runs on a
// connection of its own, dialled and written within timeout: the dump
// streams every key, so it must not hold a connection that commands
// share.
//
// idle is how long the listing may wait for the next bytes from the
// server before it gives up. It is an idle deadline, extended whenever
// bytes arrive, not a total one: the listing of a server holding millions
// of keys, on a loaded machine, may take long, and no fixed total fits
// every size. A server that stops sending altogether (hung, partitioned)
// still ends the listing. Closing stop ends it at once, with ErrClosed:
// a server that hangs would otherwise hold a caller that is stopping for
// idle.
//
// An error from fn ends the listing and is returned as is. The listing's
// own errors are the dial's, a broken or stalled stream, a malformed line,
// or memcached's BUSY while another dump runs on the server.
func Metadump(addr string, timeout, idle time.Duration, stop <-chan struct{}, fn func(key []byte) error) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	listed := make(chan struct{})
	defer close(listed)
	go func() {
		select {
		case <-stop:
			c.Close()
		case <-listed:
		}
	}()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("lru_crawler metadump hash\r\n")); err != nil {
		return err
	}
	r := bufio.NewReaderSize(idleReader{c, idle}, MetadumpMaxLine)
	var buf []byte
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case err != nil && stopped():
			return ErrClosed
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("lru_crawler metadump: a line longer than %d bytes", MetadumpMaxLine)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("lru_crawler metadump: nothing received for %v: %w", idle, err)
		case err != nil:
			return fmt.Errorf("lru_crawler metadump: stream broken before END: %w", err)
		}
		key, end, err := metadumpKey(buf[:0], line)
		buf = key[:0]
		switch {
		case err != nil:
			return err
		case end:
			return nil
		case len(key) == 0:
			continue // OK
		}
		if err := fn(key); err != nil {
			return err
		}
	}
}

// metadumpKey reads one line of lru_crawler metadump: the key it names,
// URL-escaped as memcached writes it (key=<key> exp=... la=... cas=...
// fetch=... cls=... size=...), or end at the final END. An OK (which
// memcached's protocol.txt allows before the dump) names no key. memcached's
// errors are errors: BUSY means another metadump runs on the node (one
// runs per server at a time, e.g. another proxy's catch-up), and the
// monitor tries again at its next probe. Any other line is malformed. The
// key is decoded as url.QueryUnescape does and appended to dst.
func metadumpKey(dst, line []byte) (key []byte, end bool, err error) {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	switch {
	case string(line) == "END":
		return dst, true, nil
	case string(line) == "OK":
		return dst, false, nil
	case bytes.HasPrefix(line, []byte("key=")):
	case bytes.HasPrefix(line, []byte("BUSY")), bytes.HasPrefix(line, []byte("ERROR")),
		bytes.HasPrefix(line, []byte("CLIENT_ERROR")), bytes.HasPrefix(line, []byte("SERVER_ERROR")),
		bytes.HasPrefix(line, []byte("BADCLASS")):
		return dst, false, fmt.Errorf("lru_crawler metadump: %q", clip(line))
	default:
		return dst, false, fmt.Errorf("lru_crawler metadump: malformed line %q", clip(line))
	}
	enc, _, _ := bytes.Cut(line[len("key="):], []byte(" "))
	key, ok := appendUnescaped(dst, enc)
	if !ok || len(key) == len(dst) {
		// The key may hold a secret (sessionstore's hold a session ID):
		// the error shows no more of it than a log line may.
		return dst, false, fmt.Errorf("lru_crawler metadump: malformed key %q", enc[:min(len(enc), keyShown)])
	}
	return key, false, nil
}

// appendUnescaped appends enc decoded as url.QueryUnescape decodes it (%XX
// is the byte XX, + a space), without its allocations: a dump lists every
// key of a node, most of which a copy skips. It reports false for a % not
// followed by two hex digits.
func appendUnescaped(dst, enc []byte) ([]byte, bool) {
	for i := 0; i < len(enc); i++ {
		switch c := enc[i]; c {
		case '%':
			var b [1]byte
			if i+2 >= len(enc) {
				return dst, false
			}
			if _, err := hex.Decode(b[:], enc[i+1:i+3]); err != nil {
				return dst, false
			}
			dst = append(dst, b[0])
			i += 2
		case '+':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

// keyShown is how much of a malformed key an error shows: as much as
// sessionstore lets a log line show of a session ID (LogIDLen).
const keyShown = 6

// clip shortens a line quoted in an error.
func clip(line []byte) []byte {
	const n = 120
	if len(line) > n {
		return line[:n]
	}
	return line
}

// idleReader extends the connection's read deadline before each read, so
// that only time spent waiting for the node counts against it, not the
// time the reader spends copying between reads (Metadump's idle).
type idleReader struct {
	c    net.Conn
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(r.idle))
	return r.c.Read(p)
}
