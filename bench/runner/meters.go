package main

// meterGroups are the process groups whose cost a run against one front
// end reports: the proxy's own, and the whole stack's (the proxy, the
// backends behind it and the memcached nodes they keep sessions in).
type meterGroups struct {
	proxy, stack []int
}

// meter registers addr's front end: its proxy is the process group proxy,
// its stack that plus stack (the backends' and memcached's groups).
func (e *env) meter(addr string, proxy int, stack ...int) {
	if e.meters == nil {
		e.meters = map[string]meterGroups{}
	}
	e.meters[addr] = meterGroups{proxy: []int{proxy}, stack: append([]int{proxy}, stack...)}
}

// sharedStack is the process groups of the backends and memcached nodes
// every sessionproxy instance, nginx, HAProxy and the thin proxy use.
func (e *env) sharedStack() []int {
	return append(append([]int{}, e.backendPgids...), e.memcachedPgids...)
}

// keepSyscalls remembers the system calls per request perf counted in a
// run against addr's path, and gives a run without perf that count.
func (e *env) keepSyscalls(addr, path string, r *result) {
	key := addr + " " + path
	if r.SysPerf {
		if e.sysSeen == nil {
			e.sysSeen = map[string]float64{}
		}
		e.sysSeen[key] = r.Sys
	} else if v, ok := e.sysSeen[key]; ok {
		r.Sys, r.SysPerf = v, true
	}
}
