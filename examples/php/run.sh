#!/bin/sh
# One command: two PHP-FPM pools (TCP and a Unix socket) with
# adapters/php as auto_prepend_file, behind sessionproxy, sessions in the
# proxy's own memory. Open http://127.0.0.1:8080/ (LISTEN overrides it).
# Ctrl-C stops everything. Needs php-fpm (make deps) and Go.
set -eu
cd "$(dirname "$0")/../.."
repo=$(pwd)
listen=${LISTEN:-127.0.0.1:8080}
dir=$(mktemp -d /tmp/sessionproxy-php.XXXXXX)
fpmpid=""
# php-fpm starts a session of its own: kill 0 does not reach it.
trap '[ -n "$fpmpid" ] && kill "$fpmpid" 2>/dev/null; trap - EXIT INT TERM; kill 0 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
fpm=$(command -v php-fpm || ls /usr/sbin/php-fpm* 2>/dev/null | head -n1)
[ -n "$fpm" ] || { echo "php-fpm is not installed (make deps)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9123)
for pool in A B; do
  if [ $pool = A ]; then addr=127.0.0.1:$port; else addr=$dir/fpm.sock; fi
  cat >>"$dir/fpm.conf" <<CONF
[$pool]
listen = $addr
listen.mode = 0666
pm = static
pm.max_children = 2
env[POOL] = $pool
php_admin_value[auto_prepend_file] = $repo/adapters/php/sessionproxy.php
CONF
done
printf '[global]\npid = %s/fpm.pid\nerror_log = /proc/self/fd/2\ndaemonize = no\n' "$dir" | cat - "$dir/fpm.conf" >"$dir/fpm.full.conf"
root=""
[ "$(id -u)" = 0 ] && root=-R
"$fpm" -F -y "$dir/fpm.full.conf" $root &
fpmpid=$!
cat >"$dir/sessionproxy.yaml" <<CONF
listen: "$listen"
backends:
  - url: "fastcgi://127.0.0.1:$port"
  - url: "fastcgi+unix:$dir/fpm.sock"
fastcgi:
  root: "$repo/examples/php/www"
CONF
go build -o "$dir/sessionproxy" ./cmd/sessionproxy
echo "open http://$listen/ (Ctrl-C stops)" >&2
"$dir/sessionproxy" run -config "$dir/sessionproxy.yaml" &
wait
