package memcache

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Stats is what ReadStats reads of a server's "stats": what a monitor
// needs to tell a restarted server (another PID, a later start) and an
// empty one.
type Stats struct {
	PID       int64 // the server's process ID
	Time      int64 // the server's clock, unix seconds
	Uptime    int64 // seconds since the server started
	CurrItems int64 // items held now
}

// Started is when the server started, unix seconds by its clock (whole
// seconds: two reads of one server may differ by one).
func (s Stats) Started() int64 { return s.Time - s.Uptime }

// ReadStats asks the server at addr for its stats on a connection of its
// own, dialled for this question and closed after it: a monitor that asks
// so learns whether the server answers now, whatever became of the
// connections commands use. timeout bounds the dial, and the whole
// exchange too (at least 100ms).
func ReadStats(addr string, timeout time.Duration) (Stats, error) {
	var st Stats
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return st, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(max(timeout, 100*time.Millisecond)))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		return st, err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return st, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return st, nil
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			return st, fmt.Errorf("memcache: stats: unexpected answer %q", line)
		}
		v, _ := strconv.ParseInt(f[2], 10, 64)
		switch f[1] {
		case "time":
			st.Time = v
		case "uptime":
			st.Uptime = v
		case "curr_items":
			st.CurrItems = v
		case "pid":
			st.PID = v
		}
	}
}
