#!/bin/sh
# Builds sessionproxy_<version>_<arch>.deb into OUT (default dist/) with
# dpkg-deb alone. The version is packaging/version.sh's without its "v",
# its "-" made "." or "+" (a "-" would start a Debian revision).
# Usage: packaging/deb/build.sh [OUT]
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-dist}
GO=${GO:-go}
VERSION=$(sh packaging/version.sh)
DEBVERSION=$(echo "${VERSION#v}" | sed 's/-dev+/~dev+/; s/-dev$/~dev/; s/-\([0-9]*\)-g/+\1.g/; s/-dirty/.dirty/')
ARCH=${ARCH:-$(dpkg --print-architecture)}
GOARCH=$(case "$ARCH" in amd64) echo amd64 ;; arm64) echo arm64 ;; i386) echo 386 ;; armhf) echo arm ;; *) echo "$ARCH" ;; esac)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/etc/sessionproxy" "$root/etc/logrotate.d" \
	"$root/lib/systemd/system" "$root/usr/share/doc/sessionproxy"
# Static (no cgo), so that it runs on any Debian of the architecture.
CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH $GO build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$VERSION" -o "$root/usr/bin/sessionproxy" ./cmd/sessionproxy
install -m 0644 packaging/deb/sessionproxy.yaml "$root/etc/sessionproxy/sessionproxy.yaml"
install -m 0644 packaging/deb/sessionproxy.logrotate "$root/etc/logrotate.d/sessionproxy"
# The repository's unit, with the package's paths and its system user
# (postinst creates it) instead of DynamicUser, so that the log directory
# the package ships belongs to someone before the first start.
sed -e 's#/usr/local/bin/sessionproxy#/usr/bin/sessionproxy#g' \
	-e 's#^DynamicUser=yes$#User=sessionproxy\nGroup=sessionproxy#' \
	examples/sessionproxy.service >"$root/lib/systemd/system/sessionproxy.service"
grep -q '^User=sessionproxy$' "$root/lib/systemd/system/sessionproxy.service" || { echo "the unit has no DynamicUser=yes to replace" >&2; exit 1; }
# access_log.path's directory, owned by the user once postinst has run.
install -d -m 0755 "$root/var/log/sessionproxy"
chmod 0644 "$root/lib/systemd/system/sessionproxy.service"
for f in README.md CHANGELOG.md LICENSE docs/config.md; do install -m 0644 "$f" "$root/usr/share/doc/sessionproxy/"; done
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
printf '/etc/sessionproxy/sessionproxy.yaml\n/etc/logrotate.d/sessionproxy\n' >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<CONTROL
Package: sessionproxy
Version: $DEBVERSION
Architecture: $ARCH
Maintainer: sessionproxy maintainers <sessionproxy@localhost>
Installed-Size: $(du -sk "$root" | cut -f1)
Section: httpd
Priority: optional
Depends: passwd
Suggests: memcached | redis-server, logrotate
Description: load-balancing reverse proxy with a built-in session store
 sessionproxy balances HTTP requests over application servers and keeps
 their sessions itself (an in-process hot tier, replicated on memcached or
 Redis), handing them to the backends in X-Session-* headers.
CONTROL
mkdir -p "$OUT"
deb="$OUT/sessionproxy_${DEBVERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
