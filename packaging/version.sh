#!/bin/sh
# Prints the version of the tree: `git describe --tags --always --dirty`
# with its "v" (v0.3.0, v0.3.0-4-g1a2b3c4), or, where no tag is reachable
# or there is no git, the last release with what git knows
# (v0.3.0-dev+g1a2b3c4). The first release tag is v0.3.0 (CHANGELOG.md).
RELEASE=0.3.0
d=$(git describe --tags --always --dirty 2>/dev/null) || d=""
case "$d" in
v[0-9]*) echo "$d" ;;
"") echo "v$RELEASE-dev" ;;
*) echo "v$RELEASE-dev+g$d" ;;
esac
