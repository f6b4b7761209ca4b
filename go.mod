module sessionproxy

go 1.26.8

require (
	github.com/VictoriaMetrics/metrics v1.44.0
	github.com/coocood/freecache v1.2.7
	github.com/gorilla/websocket v1.5.3
	github.com/klauspost/compress v1.20.3
	github.com/molecule-man/go-brrr v1.3.1
	github.com/pires/go-proxyproto v0.15.0
	github.com/redis/rueidis v1.0.79
	github.com/valyala/fasthttp v1.78.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/cespare/xxhash/v2 v2.1.2 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.51.0 // indirect
)
