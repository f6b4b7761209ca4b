package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// memcacheDialer reads a memcached's stats directly (gomemcache has no
// stats call).
type memcacheDialer struct{ addr string }

func (d *memcacheDialer) stats() (map[string]string, error) {
	c, err := net.DialTimeout("tcp", d.addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "stats\r\n")
	out := map[string]string{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "END" {
			return out, nil
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			out[f[1]] = f[2]
		}
	}
	return out, sc.Err()
}
