package memcached

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"sessionproxy/internal/rawtcp"

	"sessionproxy/sessionstore"
)

// TestLogIDs: what a log line may hold of a session ID, directly
// (LogID) or inside an error quoting a node's answer out of step with the
// stream (a stored value, which holds the new ID after a rotation), is
// never the whole ID (CONTRACT section 12).
func TestLogIDs(t *testing.T) {
	id := sessionstore.AppendNewID(nil)
	if got := sessionstore.LogID(id); got != string(id[:sessionstore.LogIDLen]) {
		t.Errorf("LogID = %q, want %q", got, id[:sessionstore.LogIDLen])
	}
	if got := sessionstore.LogID([]byte("abc")); got != "abc" {
		t.Errorf("LogID of a short value = %q", got)
	}
	s := sessionstore.Session{ID: id, MovedTo: sessionstore.AppendNewID(nil), Version: 3}
	value := s.AppendEncode(nil)
	for _, line := range [][]byte{value, append([]byte("VA 12 "), s.MovedTo...), s.MovedTo} {
		if err := outOfStepAnswer(t, line); err == nil || strings.Contains(err.Error(), string(s.MovedTo)) {
			t.Errorf("a node answering %q: error %v holds the whole ID", line, err)
		}
	}
}

// outOfStepAnswer is the error a node's get returns when the node answers
// line (and a line end) to it.
func outOfStepAnswer(t *testing.T, line []byte) error {
	t.Helper()
	srv := rawtcp.Serve(t, func(c net.Conn) {
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			c.Write(append(line, "\r\n"...))
		}
		c.Read(make([]byte, 1)) // until the client hangs up
	})
	n := newNode(sessionstore.Node{ID: "fake", Addr: srv.Addr}, time.Second, 0)
	defer n.dropConns()
	c, err := n.pipe.Get([]byte("sp:" + string(sessionstore.AppendNewID(nil))))
	c.Release()
	return err
}
