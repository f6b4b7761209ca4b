# make test  - install what the tests need (memcached, from Debian), then vet and run every test, the fault harness's short run (about a minute), then fuzz
# make fuzz  - run each fuzz target for FUZZTIME (default 10000 inputs), one at a time
# make allocs - the request path's benchmarks, failing if any allocates
# make build - build bin/sessionproxy
# make deb   - build dist/sessionproxy_<version>_<arch>.deb with dpkg-deb (packaging/deb)
# make bench - Go benchmarks beside the code
# make bench-wrk   - wrk against nginx on this machine (bench/, a module of its own); ARGS="-rounds 5" to pass flags
# make bench-fault - the failover scenario over time, with a chart
# make chaos - the fault harness (internal/chaos: memcached, Redis master+replica and Cluster) for CHAOS_DURATION per configuration (default 3m), random seed (CHAOS_SEED=n replays one)

GO ?= go
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test deps build deb bench bench-wrk bench-fault fmt fuzz allocs chaos

# staticcheck is pinned so that a new release cannot fail a build that passed.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

test: deps
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 ./...
	# The proxy's tests again over the pipelined transport (docs/config.md, "pipeline").
	SESSIONPROXY_TEST_PIPELINE=8 $(GO) test -race -count=1 ./proxy/
	# The fault harness's short run: seed 1, 25s per memcached configuration
	# (docs/guarantees.md); its long runs are `make chaos`.
	$(GO) vet -tags chaos ./internal/chaos/
	CHAOS_SEED=1 CHAOS_DURATION=25s $(GO) test -tags chaos -count=1 -run 'TestChaosMemcached|TestRedisModel' ./internal/chaos/
	# Redis, the shipped defaults' configuration (master + replica, client_cache).
	# TestRedisModel (the checker's own test) runs in the line above: -run
	# splits at '/', so it cannot share this pattern.
	CHAOS_SEED=1 CHAOS_DURATION=60s $(GO) test -tags chaos -count=1 -run 'TestChaosRedis/^replica$$' ./internal/chaos/
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...
	@$(MAKE) --no-print-directory allocs
	@$(MAKE) --no-print-directory fuzz

# Several proxies over memcached under kills, freezes, partitions and
# restarts of nodes and proxies; the recorded history is checked against a
# model of the contract (internal/chaos, docs/guarantees.md). The seed is
# printed: CHAOS_SEED=<n> make chaos replays its choices.
CHAOS_SEED ?= random
CHAOS_DURATION ?= 3m

chaos:
	CHAOS_SEED=$(CHAOS_SEED) CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -tags chaos -count=1 -v -timeout 60m ./internal/chaos/

# The request path allocates nothing: every benchmark of it must report
# 0 allocs/op. Enough iterations that pools filling at the start round to 0.
ALLOCBENCH := Proxy|SessionLoadApply|LoadLocal|LoadShared|MemcachedView|MemcachedPut|Decode|ApplyEncode

allocs:
	@out=$$($(GO) test -run '^$$$$' -bench '$(ALLOCBENCH)' -benchtime 20000x -benchmem ./proxy/ ./sessionstore/ ./sessionstore/memcached/) || { echo "$$out"; exit 1; }; \
	echo "$$out" | grep allocs/op; \
	echo "$$out" | awk '/allocs\/op/ && $$(NF-1) != 0 { print "allocates on the request path: " $$1; bad = 1 } END { exit bad }'

# Every func FuzzXxx in a test file, found anew each run with grep so that
# targets added later in any package are included. go test fuzzes one target of one
# package at a time. Minimizing a large new input may take the default 60s,
# all of a short run: 50 tries are enough here, and a failure still keeps
# its input under testdata/fuzz. A count, not a duration: with a duration, a
# loaded machine can end the run mid-minimization and go test reports
# "context deadline exceeded" as a failure.
FUZZTIME ?= 10000x

fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$t in $$(dirname $$f) for $(FUZZTIME)"; \
			(cd $$(dirname $$f) && $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 50x .) || exit 1; \
		done; \
	done

# Tests start real memcached and redis-server processes, run the example backends with
# python3 and node, and put haproxy in front of the proxy; Debian's packages provide
# whichever is missing. adapters/express's test runs `npm ci` (express, passport, from
# the npm registry) when its node_modules lacks them, hence npm. The admin dashboard is
# tested in headless Chromium (chromedp drives Debian's chromium).
# cmd/sessionproxy's TestMetricsPassPromtool checks /metrics with promtool, which
# Debian ships only in the prometheus package (the server too: on a host with systemd
# it starts Prometheus on :9090, the packaged sessionproxy.yaml's admin port, and
# prometheus-node-exporter on :9100; `systemctl disable --now prometheus` on a
# workstation that runs both).
# import-nginx is compared side by side with a real nginx (TestImportNginxSideBySide).
DEPS := memcached:memcached redis-server:redis-server redis-cli:redis-tools python3:python3 node:nodejs npm:npm haproxy:haproxy chromium:chromium promtool:prometheus nginx:nginx
# The adapters' tests run the real frameworks and lint the Python adapters: Debian
# packages that are libraries, not commands, checked with dpkg. They install into
# /usr/bin/python3, which adapters/python's tests use whatever python3 is first on PATH.
# adapters/servlet builds its jar with the JDK's javac and jar (no Maven) against
# the Servlet 5.0 API (libjakarta-servlet-api-java) and Tomcat 10.1's 6.0 one, and
# runs two Tomcat 10 from /usr/share/tomcat10 with a conf/ of its own. Tomcat's
# runtime only (tomcat10-common, libtomcat10-java), not the tomcat10 package: that
# one enables and starts a system Tomcat on port 8080, where the README's first
# command, `sessionproxy demo`, listens. adapters/php and the FastCGI backends run
# PHP-FPM (php-fpm) and lint with php -l (php-cli).
PKGDEPS := python3-flask python3-django python3-pyflakes pycodestyle tomcat10-common libtomcat10-java default-jdk-headless libjakarta-servlet-api-java php-fpm php-cli

deps:
	@missing=""; for d in $(DEPS); do command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d#*:}"; done; \
	for p in $(PKGDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian's packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@for d in $(DEPS); do command -v $${d%%:*} >/dev/null 2>&1 || { echo "$${d%%:*} is still missing"; exit 1; }; done
	@for p in $(PKGDEPS); do dpkg -s $$p >/dev/null 2>&1 || { echo "$$p is still missing"; exit 1; }; done

# The version is git describe's (packaging/version.sh; the first release tag
# is v0.3.0), which `sessionproxy version` prints.
build:
	$(GO) build -buildvcs=auto -ldflags "-X main.version=$$(sh packaging/version.sh)" -o bin/sessionproxy ./cmd/sessionproxy

# dpkg-deb only (Debian's dpkg); packaging/deb_test.go installs the result in
# a scratch root and runs it.
deb:
	GO=$(GO) sh packaging/deb/build.sh dist

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-wrk:
	cd bench && $(GO) run ./runner $(ARGS)

bench-fault:
	cd bench && $(GO) run ./runner -fault $(ARGS)

fmt:
	gofmt -w $$(git ls-files '*.go')
