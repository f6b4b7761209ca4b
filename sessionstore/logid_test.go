package sessionstore

import (
	"bytes"
	"strings"
	"testing"
)

// TestLogIDs: what a log line may hold of a session ID, directly
// (LogID) or inside an answer line out of step with the stream
// (answerForLog), is never the whole ID (CONTRACT section 12).
func TestLogIDs(t *testing.T) {
	id := AppendNewID(nil)
	if got := LogID(id); got != string(id[:LogIDLen]) {
		t.Errorf("LogID = %q, want %q", got, id[:LogIDLen])
	}
	if got := LogID([]byte("abc")); got != "abc" {
		t.Errorf("LogID of a short value = %q", got)
	}
	// A stored value of a rotated session holds the new ID.
	s := Session{ID: id, MovedTo: AppendNewID(nil), Version: 3}
	value := s.AppendEncode(nil)
	for _, line := range [][]byte{value, append([]byte("VA 12 "), s.MovedTo...), s.MovedTo} {
		got := answerForLog(line)
		if bytes.Contains(got, s.MovedTo) || len(got) >= IDLen {
			t.Errorf("answerForLog(%q) = %q: holds a whole ID", line, got)
		}
	}
	for _, line := range []string{"SERVER_ERROR out of memory storing object", "CLIENT_ERROR bad command line format", "ERROR"} {
		if got := answerForLog([]byte(line)); string(got) != line {
			t.Errorf("memcached's own %q became %q", line, got)
		}
	}
	if got := answerForLog([]byte("SERVER_ERROR " + strings.Repeat("x", 500))); len(got) > 120 {
		t.Errorf("a long error line is kept whole: %d bytes", len(got))
	}
}
