package memcached

import (
	"strings"
	"testing"

	"sessionproxy/internal/memcache"
	"sessionproxy/sessionstore"
)

var nodeTests = []struct {
	in, id, addr string
	ok           bool
}{
	{"127.0.0.1:11211", "127.0.0.1:11211", "127.0.0.1:11211", true},
	{"n1:127.0.0.1:11211", "n1", "127.0.0.1:11211", true},
	{"n1:[::1]:11211", "n1", "[::1]:11211", true},
	{"[::1]:11211", "[::1]:11211", "[::1]:11211", true},
	{"localhost", "", "", false},
	{"n1:host:port", "", "", false},
}

func TestParseNode(t *testing.T) {
	for _, tt := range nodeTests {
		n, err := ParseNode(tt.in)
		if (err == nil) != tt.ok || n.ID != tt.id || n.Addr != tt.addr {
			t.Errorf("ParseNode(%q) = %+v, %v; want id %q addr %q ok=%v", tt.in, n, err, tt.id, tt.addr, tt.ok)
		}
	}
}

func TestNodeListMarksFailover(t *testing.T) {
	s := DefaultSettings()
	s.Nodes = []string{"n1:127.0.0.1:1", "n2:127.0.0.1:2"}
	s.FailoverNodes = []string{"n2"}
	nodes, err := s.NodeList()
	if err != nil || len(nodes) != 2 || nodes[0].Failover || !nodes[1].Failover || nodes[1].Addr != "127.0.0.1:2" {
		t.Fatalf("NodeList = %+v, %v", nodes, err)
	}
}

// TestApplyKeepsTheStoreInUse: a node that does not parse fails Apply, and
// the options still show the store in use, so that Options.Check's rules
// (two stores, nowhere) see what the file says.
func TestApplyKeepsTheStoreInUse(t *testing.T) {
	s := DefaultSettings()
	s.Nodes = []string{"nope"}
	var o sessionstore.Options
	err := s.Apply(&o)
	if err == nil || !strings.Contains(err.Error(), `session.memcached.nodes[0]: "nope" is not host:port or id:host:port`) {
		t.Fatalf("Apply: %v", err)
	}
	if len(o.Memcached.Nodes) != 1 {
		t.Fatalf("nodes %+v", o.Memcached.Nodes)
	}
	o.Redis.Addrs = []string{"127.0.0.1:1"}
	if err := o.Check(); err == nil {
		t.Fatal("Check saw one store")
	}
}

func TestDefaultsAreTheStores(t *testing.T) {
	s := DefaultSettings()
	s.Nodes = []string{"127.0.0.1:1"}
	var o sessionstore.Options
	if err := s.Apply(&o); err != nil {
		t.Fatal(err)
	}
	m := o.Memcached
	if m.Replicas != sessionstore.DefaultReplicas || m.KeyPrefix != sessionstore.DefaultKeyPrefix || m.Timeout != sessionstore.DefaultTimeout ||
		m.MaxIdleConns != sessionstore.DefaultMaxIdleConns || m.ProbeInterval != sessionstore.DefaultProbeInterval {
		t.Fatalf("options %+v", m)
	}
	if ps := s.Check(&o); len(ps) != 0 {
		t.Fatalf("defaults have problems: %+v", ps)
	}
}

// sessionstore keeps its own copy of the client's default so that config
// does not link internal/memcache; the two must agree.
func TestDefaultMaxIdleConnsIsTheClients(t *testing.T) {
	if sessionstore.DefaultMaxIdleConns != memcache.DefaultConns {
		t.Fatalf("sessionstore.DefaultMaxIdleConns = %d, memcache.DefaultConns = %d", sessionstore.DefaultMaxIdleConns, memcache.DefaultConns)
	}
}
