package admin

import (
	"bufio"
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The dashboard (CONTRACT.md section 17): GET / is one HTML page with its
// CSS and script inline, which fetches GET /dashboard.json every
// dashboardRefresh and computes rates from the counters of two samples,
// so the server keeps no history.

//go:embed dashboard.html
var dashboardHTML string

var dashboardPage = template.Must(template.New("dashboard").Parse(dashboardHTML))

// dashboardRefresh is how often the page fetches a new sample.
const dashboardRefresh = 2 * time.Second

// Dashboard is the JSON document of GET /dashboard.json: /status, the
// hot tier's state and the request counters, at one instant.
type Dashboard struct {
	// Time is when the sample was taken, in Unix milliseconds: the page
	// divides counter deltas by the time between two samples.
	Time int64 `json:"time"`
	Status
	// HotEntries is the number of sessions in this proxy's hot tier: the
	// live sessions this proxy holds. The shared stores cannot count
	// theirs cheaply (memcached's item count includes every replica and
	// the principal indexes), so the page shows this one, saying so.
	HotEntries int64 `json:"hot_entries"`
	// HotHitRatio is the share of the session lookups since start (of a
	// well-formed cookie) that the hot tier answered: from Lookups, as
	// the page's ratio over the last interval is, rather than freecache's
	// own hit rate, which counts the store's internal reads too.
	HotHitRatio float64 `json:"hot_hit_ratio"`
	// Sessions says whether sessions are on at all.
	Sessions bool `json:"sessions"`
	// Requests and Errors are the requests answered and those answered
	// with a 5xx, counted since start (sessionproxy_requests_total).
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Lookups counts session lookups by result since start
	// (sessionproxy_session_lookups_total), for the recent hit ratio.
	Lookups map[string]uint64 `json:"lookups"`
}

// serveDashboard writes the page. Its Content-Security-Policy allows
// nothing but its own inline style and script (by nonce) and fetches from
// the admin listener itself: the page loads no outside asset, and a
// string from a backend or node shown in it cannot become script.
func serveDashboard(w http.ResponseWriter) {
	var b [16]byte
	rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:]) // no "+", which html/template escapes in an attribute
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+
		"'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	var buf bytes.Buffer
	err := dashboardPage.Execute(&buf, struct {
		Nonce     string
		RefreshMs int64
	}{nonce, dashboardRefresh.Milliseconds()})
	if err != nil {
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Write(buf.Bytes())
}

// dashboard takes a sample. metricsPage writes what GET /metrics serves:
// the counters are read from it rather than from proxy.Metrics' fields,
// so that the dashboard shows exactly what Prometheus scrapes and depends
// only on the metric names of the contract.
func (t Target) dashboard(metricsPage func(*bytes.Buffer)) Dashboard {
	d := Dashboard{Time: time.Now().UnixMilli(), Status: t.status(), Sessions: t.Store != nil, Lookups: map[string]uint64{}}
	if t.Store != nil {
		d.HotEntries, _ = t.Store.LocalStats()
	}
	var page bytes.Buffer
	metricsPage(&page)
	sc := bufio.NewScanner(&page)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, labels, value, ok := parseSample(sc.Text())
		if !ok {
			continue
		}
		switch name {
		case "sessionproxy_requests_total":
			d.Requests += value
			if strings.HasPrefix(label(labels, "code"), "5") {
				d.Errors += value
			}
		case "sessionproxy_session_lookups_total":
			d.Lookups[label(labels, "result")] += value
		}
	}
	var all uint64
	for result, n := range d.Lookups {
		if result != "none" && result != "error" {
			all += n
		}
	}
	if all > 0 {
		d.HotHitRatio = float64(d.Lookups["local"]) / float64(all)
	}
	return d
}

// parseSample splits one line of Prometheus' text format into the metric
// name, its labels (between the braces, unparsed) and its value as a
// whole count. Comments, blank lines and values that are not counts are
// not samples.
func parseSample(line string) (name, labels string, value uint64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", "", 0, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", "", 0, false
	}
	series, v := line[:i], line[i+1:]
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f < 1<<63) { // NaN and ±Inf too
		return "", "", 0, false
	}
	name = series
	if j := strings.IndexByte(series, '{'); j >= 0 && strings.HasSuffix(series, "}") {
		name, labels = series[:j], series[j+1:len(series)-1]
	}
	return name, labels, uint64(f), true
}

// label returns the value of label key in labels (`a="x",b="y"`, as
// Prometheus' text format escapes them), or "".
func label(labels, key string) string {
	for labels != "" {
		k, rest, ok := strings.Cut(labels, "=\"")
		if !ok {
			return ""
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			v.WriteByte(rest[i])
		}
		if strings.TrimSpace(k) == key {
			return v.String()
		}
		labels = strings.TrimLeft(rest[min(i+1, len(rest)):], ", ")
	}
	return ""
}

// bufferWriter is the http.ResponseWriter through which the dashboard
// reads the /metrics page.
type bufferWriter struct {
	*bytes.Buffer
	h http.Header
}

func (b bufferWriter) Header() http.Header { return b.h }
func (b bufferWriter) WriteHeader(int)     {}
