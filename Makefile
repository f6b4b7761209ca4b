# make test  - install what the tests need (memcached, from Debian), then vet and run every test
# make build - build bin/sessionproxy
# make bench - Go benchmarks; see bench/README.md for the wrk comparison with nginx

GO ?= go
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test deps build bench fmt

test: deps
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 ./...

# Tests start real memcached processes; Debian's package provides the binary.
deps:
	@command -v memcached >/dev/null 2>&1 || { \
		echo "installing memcached from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq memcached; }
	@command -v memcached >/dev/null 2>&1 || { echo "memcached is still missing"; exit 1; }

build:
	$(GO) build -o bin/sessionproxy ./cmd/sessionproxy

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
