package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/valyala/fasthttp"
)

// classic is a backend that keeps its sessions in memcached itself, the
// way memcached-session-manager does in non-sticky mode behind a plain
// load balancer: the session id names its primary node ("<hex>-n1"); every
// request reads the session from the primary and, if it misses or fails,
// the backup copy ("bak:<id>") on the other node; after a change the
// session is written to the primary and then the backup, before the
// response. It answers the same paths as the proxied backend.
//
// It leaves out what MSM adds on top (the validity records written on
// every request, Java serialisation, session locking), so it is a faster
// classic stack than a real one: ratios against it are conservative.
type classic struct {
	nodes []*memcache.Client
	next  atomic.Uint32 // primary node of the next new session
	n     atomic.Uint64
}

const (
	classicCookie = "JSESSIONID"
	classicTTL    = 30 * 60 // seconds, sliding as the proxy's
)

func newClassic(addrs []string) (*classic, error) {
	if len(addrs) != 2 || addrs[0] == "" || addrs[1] == "" {
		return nil, errors.New("backend: -classic needs -memcached host:port,host:port")
	}
	c := &classic{}
	for _, a := range addrs {
		mc := memcache.New(a)
		mc.Timeout = 100 * time.Millisecond
		mc.MaxIdleConns = 256
		c.nodes = append(c.nodes, mc)
	}
	return c, nil
}

// session is the attributes of one session, in the order they were set.
type session struct {
	id    string
	node  int // primary
	attrs [][2][]byte
}

func (s *session) get(k string) []byte {
	for _, a := range s.attrs {
		if string(a[0]) == k {
			return a[1]
		}
	}
	return nil
}

func (s *session) set(k string, v []byte) {
	for i, a := range s.attrs {
		if string(a[0]) == k {
			s.attrs[i][1] = v
			return
		}
	}
	s.attrs = append(s.attrs, [2][]byte{[]byte(k), v})
}

// encode writes each attribute as key length, key, value length, value.
func (s *session) encode() []byte {
	var b []byte
	for _, a := range s.attrs {
		b = strconv.AppendInt(b, int64(len(a[0])), 10)
		b = append(b, ':')
		b = append(b, a[0]...)
		b = strconv.AppendInt(b, int64(len(a[1])), 10)
		b = append(b, ':')
		b = append(b, a[1]...)
	}
	return b
}

func decode(b []byte) ([][2][]byte, error) {
	var out [][2][]byte
	field := func() ([]byte, error) {
		i := bytes.IndexByte(b, ':')
		if i < 0 {
			return nil, errors.New("no length")
		}
		n, err := strconv.Atoi(string(b[:i]))
		if err != nil || n < 0 || n > len(b)-i-1 {
			return nil, errors.New("bad length")
		}
		v := b[i+1 : i+1+n]
		b = b[i+1+n:]
		return v, nil
	}
	for len(b) > 0 {
		k, err := field()
		if err != nil {
			return nil, err
		}
		v, err := field()
		if err != nil {
			return nil, err
		}
		out = append(out, [2][]byte{k, v})
	}
	return out, nil
}

// load reads the session named by the cookie: primary first, then the
// backup on the other node. nil if there is none.
func (c *classic) load(id string) *session {
	if len(id) < 4 || id[len(id)-3:len(id)-1] != "-n" {
		return nil
	}
	node := int(id[len(id)-1] - '1')
	if node < 0 || node >= len(c.nodes) {
		return nil
	}
	it, err := c.nodes[node].Get(id)
	if err != nil {
		it, err = c.nodes[1-node].Get("bak:" + id)
	}
	if err != nil {
		return nil
	}
	attrs, err := decode(it.Value)
	if err != nil {
		return nil
	}
	return &session{id: id, node: node, attrs: attrs}
}

func (c *classic) create() *session {
	var raw [16]byte
	rand.Read(raw[:])
	node := int(c.next.Add(1) % 2)
	return &session{id: fmt.Sprintf("%s-n%d", hex.EncodeToString(raw[:]), node+1), node: node}
}

// store writes the primary, then the backup copy on the other node. A
// node that fails is skipped: the other copy still serves the reads.
func (c *classic) store(s *session) {
	v := s.encode()
	c.nodes[s.node].Set(&memcache.Item{Key: s.id, Value: v, Expiration: classicTTL})
	c.nodes[1-s.node].Set(&memcache.Item{Key: "bak:" + s.id, Value: v, Expiration: classicTTL})
}

func (c *classic) handle(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	path := string(ctx.Path())
	if path != "/read" && path != "/write" && path != "/peek" {
		return
	}
	s := c.load(string(ctx.Request.Header.Cookie(classicCookie)))
	isNew := s == nil
	if isNew {
		s = c.create()
	}
	changed := false
	switch path {
	case "/write":
		if v := ctx.QueryArgs().Peek("v"); len(v) > 0 {
			ctx.SetContentType("text/plain")
			ctx.SetBody(s.get("last"))
			s.set("last", append([]byte(nil), v...))
		} else {
			s.set("counter", strconv.AppendUint(nil, c.n.Add(1), 10))
			if p := pad(ctx); p != nil && isNew {
				s.set("pad", p)
			}
		}
		changed = true
	case "/read":
		if isNew {
			s.set("user", []byte("bench"))
			if p := pad(ctx); p != nil {
				s.set("pad", p)
			}
			changed = true
		}
	case "/peek":
		ctx.SetContentType("text/plain")
		ctx.SetBody(s.get("last"))
	}
	if !changed {
		return
	}
	c.store(s)
	if isNew {
		var ck fasthttp.Cookie
		ck.SetKey(classicCookie)
		ck.SetValue(s.id)
		ck.SetPath("/")
		ck.SetHTTPOnly(true)
		ctx.Response.Header.SetCookie(&ck)
	}
}
