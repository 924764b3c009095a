#!/usr/bin/env bash
# Builds chaoslab/toxiproxy:2.12.0, the real Toxiproxy in the official image's layout, from binaries that
# compose/toxiproxy/build.sh made (a developer's tool: the source is not in any package index we reach).
#
#   compose/images/toxiproxy/build.sh [BIN_DIR]     (BIN_DIR defaults to .toxiproxy/ in the repository)
#
# Run it where the lab's engine answers (DOCKER_HOST, see compose/engine/engine.sh). Then the compose stack
# runs the real proxy with LAB_PROXY_IMAGE=chaoslab/toxiproxy:2.12.0 (and the other two stand-ins from
# compose/images/build.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
BIN=${1:-$ROOT/.toxiproxy}
TAG=chaoslab/toxiproxy:2.12.0

die() { echo "images/toxiproxy/build.sh: $*" >&2; exit 1; }
for binary in toxiproxy-server toxiproxy-cli; do
  [ -x "$BIN/$binary" ] || die "no $BIN/$binary: build it first with compose/toxiproxy/build.sh SOURCE"
done
version=$("$BIN/toxiproxy-server" -version)
[ "$version" = "toxiproxy-server version 2.12.0" ] || die "$BIN/toxiproxy-server says '$version', not 2.12.0"
! command -v file >/dev/null || file "$BIN/toxiproxy-server" | grep -q 'statically linked' \
  || die "$BIN/toxiproxy-server is not statically linked (FROM scratch has no libc): rebuild with CGO_ENABLED=0"
docker version >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start one: compose/engine/engine.sh start"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$HERE/Dockerfile" "$BIN/toxiproxy-server" "$BIN/toxiproxy-cli" "$context/"
docker build -q -t "$TAG" "$context" >/dev/null
echo "LAB_PROXY_IMAGE=$TAG"
