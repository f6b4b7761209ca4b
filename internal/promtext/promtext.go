// Package promtext writes metrics in Prometheus' text format with a HELP
// and a TYPE line for every family, each family's samples together.
//
// The metrics themselves are github.com/VictoriaMetrics/metrics values,
// kept in several Sets (the counters that outlive reloads, each
// configuration's gauges). Written one Set after another they would
// repeat a family's HELP and TYPE or split its samples, which promtool
// rejects, and the library's HELP lines carry no text and call a gauge
// whatever it reads. So the Sets write into a buffer, and Write regroups
// their samples by family, with the type and text declared here.
package promtext

import (
	"bufio"
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// The kinds of family, as the TYPE line spells them.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
	Summary   = "summary"
)

type desc struct{ typ, help string }

var (
	mu    sync.RWMutex
	descs = map[string]desc{}
)

// Describe declares family's type and help text. The declaring package
// calls it once per family, where it registers the metric, so that the
// text lives beside the value; declaring a family again replaces it.
func Describe(family, typ, help string) {
	mu.Lock()
	defer mu.Unlock()
	descs[family] = desc{typ, help}
}

// libraryRenames gives conventional names to the library's process
// metrics whose names promtool refuses: counts that do not end in _total,
// and a gauge ending in _count, which only a histogram's or summary's
// sample may.
var libraryRenames = map[string]string{
	"go_gc_forced_count": "go_gc_forced_total",
	"go_cgo_calls_count": "go_cgo_calls_total",
	"go_cpu_count":       "go_cpu_cores",
}

func init() {
	// The library's own TYPE lines are read for families nobody
	// declared (the process's go_* and process_*): they need them.
	metrics.ExposeMetadata(true)
	// The library calls these cumulative counts gauges.
	for _, d := range [][2]string{
		{"process_io_read_bytes_total", "Bytes the process read (rchar in /proc/self/io)."},
		{"process_io_written_bytes_total", "Bytes the process wrote (wchar in /proc/self/io)."},
		{"process_io_read_syscalls_total", "Read system calls the process made."},
		{"process_io_write_syscalls_total", "Write system calls the process made."},
		{"process_io_storage_read_bytes_total", "Bytes the process read from storage."},
		{"process_io_storage_written_bytes_total", "Bytes the process wrote to storage."},
	} {
		Describe(d[0], Counter, d[1])
	}
	Describe("go_gc_forced_total", Counter, "Garbage collections forced by the program (runtime.GC).")
	Describe("go_cgo_calls_total", Counter, "Calls from Go to C.")
	Describe("go_cpu_cores", Gauge, "CPU cores on the host (runtime.NumCPU).")
}

// Family returns the family a sample name belongs to: the name without
// labels, and for a declared histogram or summary without its _bucket,
// _sum or _count.
func Family(name string) string {
	return familyOf(name, nil)
}

// familyOf is Family, with typed naming the families the library typed
// that were not declared here.
func familyOf(name string, typed map[string]string) string {
	if i := strings.IndexByte(name, '{'); i >= 0 {
		name = name[:i]
	}
	mu.RLock()
	defer mu.RUnlock()
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		typ := typed[base]
		if d, ok := descs[base]; ok {
			typ = d.typ
		}
		if typ == Histogram || typ == Summary {
			return base
		}
	}
	return name
}

// Write writes to w what each of writers writes (a Set's
// WritePrometheus, metrics.WriteProcessMetrics), grouped by family, each
// family once with its HELP and TYPE lines. A family nobody declared
// keeps the type the library gave it and a help text naming the library.
func Write(w io.Writer, writers ...func(io.Writer)) error {
	var raw bytes.Buffer
	for _, write := range writers {
		write(&raw)
	}
	type family struct {
		typ     string
		samples []string
	}
	families := map[string]*family{}
	typed := map[string]string{} // the library's TYPE lines
	var order []string
	get := func(name string) *family {
		f := families[name]
		if f == nil {
			f = &family{}
			families[name] = f
			order = append(order, name)
		}
		return f
	}
	sc := bufio.NewScanner(&raw)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, typ, ok := strings.Cut(rest, " "); ok {
				if to, ok := libraryRenames[name]; ok {
					name = to
				}
				typed[name] = typ
				if f := get(familyOf(name, typed)); f.typ == "" {
					f.typ = typ
				}
			}
			continue
		}
		if line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		bare, labels, _ := strings.Cut(name, "{")
		if to, ok := libraryRenames[bare]; ok {
			line = to + strings.TrimPrefix(line, bare)
			name = to
			if labels != "" {
				name += "{" + labels
			}
		}
		f := get(familyOf(name, typed))
		f.samples = append(f.samples, line)
	}
	sort.Strings(order)
	out := bufio.NewWriter(w)
	mu.RLock()
	for _, name := range order {
		f := families[name]
		if len(f.samples) == 0 {
			continue
		}
		d, ok := descs[name]
		if !ok {
			d = desc{f.typ, "Process and Go runtime metric, as github.com/VictoriaMetrics/metrics writes it."}
			if d.typ == "" {
				d.typ = "untyped"
			}
		}
		out.WriteString("# HELP " + name + " " + escapeHelp(d.help) + "\n")
		out.WriteString("# TYPE " + name + " " + d.typ + "\n")
		for _, s := range f.samples {
			out.WriteString(s + "\n")
		}
	}
	mu.RUnlock()
	return out.Flush()
}

// escapeHelp escapes what the text format does not allow raw in HELP.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}
