package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Redis and Memcached are the sections as config declared them before the
// store packages did, named as they were so that yaml.v3's messages about
// them read the same: FuzzStoreSections decodes a section both ways.
type Redis struct {
	Addrs        []string `yaml:"addrs"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	KeyPrefix    string   `yaml:"key_prefix"`
	Timeout      Duration `yaml:"timeout"`
	WaitReplicas int      `yaml:"wait_replicas"`
	ClientCache  bool     `yaml:"client_cache"`
}

type Memcached struct {
	Nodes         []string `yaml:"nodes"`
	FailoverNodes []string `yaml:"failover_nodes"`
	Replicas      int      `yaml:"replicas"`
	KeyPrefix     string   `yaml:"key_prefix"`
	Timeout       Duration `yaml:"timeout"`
	MaxIdleConns  int      `yaml:"max_idle_conns"`
	ProbeInterval Duration `yaml:"probe_interval"`
}

type staticSession struct {
	Memcached Memcached `yaml:"memcached"`
	Redis     Redis     `yaml:"redis"`
}

// FuzzStoreSections: a session.redis or session.memcached section decodes
// through the store packages' settings as it did through config's own
// types: the same values, or the same errors at the same lines.
func FuzzStoreSections(f *testing.F) {
	for _, s := range []string{
		"addrs: ['127.0.0.1:6379']\ntimeout: 250ms\n",
		"nodes: ['n1:127.0.0.1:11211']\nfailover_nodes: [n1]\nprobe_interval: 0\n",
		"timeout: 2 seconds\n",
		"timeout: -1s\nwait_replicas: x\n",
		"adrs: [a]\n",
		"addrs: 5\nclient_cache: maybe\n",
		"{addrs: [a], timeout: 1s}",
		"[a]",
		"5",
		"",
		"replicas: 3\nmax_idle_conns: [1]\n",
		"timeout: {a: 1}\n",
		"key_prefix: !!binary YWJj\n",
	} {
		f.Add(true, s)
		f.Add(false, s)
	}
	f.Fuzz(func(t *testing.T, redisSection bool, text string) {
		name := "memcached"
		if redisSection {
			name = "redis"
		}
		// YAML breaks lines at \r too: written as \n, every line of the
		// text stays indented inside the section (a bare \r made "s:" a
		// top-level key, which the reference below, session: alone,
		// cannot judge).
		text = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(text)
		doc := "session:\n  " + name + ":"
		if strings.ContainsAny(text, "\n") || text == "" {
			doc += "\n    " + strings.ReplaceAll(text, "\n", "\n    ") + "\n"
		} else {
			doc += " " + text + "\n"
		}
		c, err := Parse([]byte(doc))

		var ref struct {
			Session staticSession `yaml:"session"`
		}
		ref.Session.Redis = Redis{KeyPrefix: "sp:", Timeout: Duration(100 * time.Millisecond), ClientCache: true}
		ref.Session.Memcached = Memcached{Replicas: 2, KeyPrefix: "sp:", Timeout: Duration(100 * time.Millisecond), MaxIdleConns: 1, ProbeInterval: Duration(time.Second)}
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		refErr := dec.Decode(&ref)
		if refErr != nil && refErr.Error() == "EOF" {
			refErr = nil
		}
		if refErr != nil {
			refErr = yamlErrors(refErr)
		}

		if (err == nil) != (refErr == nil) {
			t.Fatalf("%q: error %v, before %v", doc, err, refErr)
		}
		if err != nil {
			got, want := err.Error(), strings.ReplaceAll(refErr.Error(), "config.staticSession", "config.Session")
			var es Errors
			if !errors.As(err, &es) || got != want {
				t.Fatalf("%q: error %q, before %q", doc, got, want)
			}
			return
		}
		var gotV, wantV string
		if redisSection {
			r := redisOf(c)
			gotV = fmt.Sprintf("%q %q %q %q %v %d %v", r.Addrs, r.Username, r.Password, r.KeyPrefix, r.Timeout, r.WaitReplicas, r.ClientCache)
			w := ref.Session.Redis
			wantV = fmt.Sprintf("%q %q %q %q %v %d %v", w.Addrs, w.Username, w.Password, w.KeyPrefix, w.Timeout.Std(), w.WaitReplicas, w.ClientCache)
		} else {
			m := memcachedOf(c)
			gotV = fmt.Sprintf("%q %q %d %q %v %d %v", m.Nodes, m.FailoverNodes, m.Replicas, m.KeyPrefix, m.Timeout, m.MaxIdleConns, m.ProbeInterval)
			w := ref.Session.Memcached
			wantV = fmt.Sprintf("%q %q %d %q %v %d %v", w.Nodes, w.FailoverNodes, w.Replicas, w.KeyPrefix, w.Timeout.Std(), w.MaxIdleConns, w.ProbeInterval.Std())
		}
		if gotV != wantV || reflect.TypeOf(c.Session.Stores[name]) == nil {
			t.Fatalf("%q: values %s, before %s", doc, gotV, wantV)
		}
	})
}
