package config

import "strings"

// MaxPipeline bounds pipeline: past a few requests per connection,
// batching gains nothing and a slow answer holds up more requests.
const MaxPipeline = 64

// pipelines checks each upstream's pipeline setting: 0 (off) to
// MaxPipeline, and only over plain-HTTP backends, since requests to an
// https backend are never pipelined and a setting that does nothing
// would mislead.
func (v *validator) pipelines() {
	for _, name := range v.c.UpstreamNames() {
		u := v.c.UpstreamConfig(name)
		path := "pipeline"
		if name != DefaultUpstream {
			path = "upstreams." + name + ".pipeline"
		}
		if u.Pipeline < 0 || u.Pipeline > MaxPipeline {
			v.errf(path, "%s must be between 0 (off) and %d, got %d", path, MaxPipeline, u.Pipeline)
			continue
		}
		if u.Pipeline == 0 {
			continue
		}
		for _, b := range u.Backends {
			if strings.HasPrefix(strings.ToLower(b.URL), "https://") {
				v.errf(path, "%s: backend %q is https, whose requests are not pipelined; set pipeline on an upstream of http backends only", path, b.URL)
				break
			}
		}
	}
}
