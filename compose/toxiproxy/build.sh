#!/usr/bin/env bash
# Builds the real Toxiproxy 2.12.0 (toxiproxy-server and toxiproxy-cli) from its source with Debian's Go
# toolchain and Debian's packaged Go libraries: no Go module proxy, no prebuilt binary.
#
#   compose/toxiproxy/build.sh SOURCE [OUT_DIR]      (OUT_DIR defaults to .toxiproxy/ in the repository)
#
# SOURCE is one of: a directory holding the Toxiproxy source tree (its go.mod names
# github.com/Shopify/toxiproxy/v2); a git repository of it (bare or not), from which the tag v2.12.0 is taken;
# a .tar.gz of the tree (GitHub's source archive of the release). No package index we reach ships that source
# (Debian, PyPI and npm have clients of Toxiproxy only), so this is a developer's tool: CI does not run it and
# nothing in `make test` needs its output. bench/tail_bench.py --toxiproxy OUT_DIR/toxiproxy-server uses it.
#
# How: GOPATH mode (GO111MODULE=off, GOPROXY=off), the source placed at its import path in a scratch GOPATH
# and every dependency taken from Debian's /usr/share/gocode. Debian 12 has older versions than 2.12's go.mod
# asks for (and Go 1.19, which cannot parse its `go 1.23.0` line: GOPATH mode never reads go.mod). Exactly one
# thing fails to compile against them, patched by zerolog-1.26-caller.patch beside this script (the logger's
# caller formatter; see the patch's header) and only when the installed zerolog needs it. The binaries are
# built as upstream's release is: CGO_ENABLED=0, -ldflags "-s -w -X ...Version=2.12.0".
# Needs root for apt-get when a package is missing; run it outside any network namespace (apt reaches Debian's
# mirror). --test also runs Toxiproxy's own Go tests of the proxy path (packages ., ./stream, ./toxics).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=2.12.0
TAG=v$VERSION
MODULE=github.com/Shopify/toxiproxy/v2
PACKAGES=(golang-go golang-github-gorilla-mux-dev golang-github-prometheus-client-golang-dev
          golang-github-prometheus-client-model-dev golang-github-prometheus-common-dev
          golang-github-prometheus-procfs-dev golang-github-rs-zerolog-dev golang-github-urfave-cli-v2-dev
          golang-golang-x-term-dev golang-gopkg-tomb.v1-dev golang-github-stretchr-testify-dev patch)

die() { echo "toxiproxy/build.sh: $*" >&2; exit 1; }
log() { echo "toxiproxy/build.sh: $*" >&2; }

run_tests=0
args=()
for arg in "$@"; do
  case $arg in
    --test) run_tests=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $arg (known: --test)" ;;
    *) args+=("$arg") ;;
  esac
done
[ ${#args[@]} -ge 1 ] && [ ${#args[@]} -le 2 ] || die "usage: build.sh [--test] SOURCE [OUT_DIR] (SOURCE: a source dir, a git repository with tag $TAG, or a .tar.gz)"
SOURCE=${args[0]}
OUT=${args[1]:-$ROOT/.toxiproxy}
[ -e "$SOURCE" ] || die "SOURCE $SOURCE does not exist"

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || die "Debian packages missing and not root to install them: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

unpack_source() {  # unpack_source DEST: the $TAG tree at DEST
  local dest=$1
  mkdir -p "$dest"
  if [ -f "$SOURCE" ]; then
    tar -xzf "$SOURCE" -C "$dest" --strip-components=1 || die "$SOURCE is not a .tar.gz of the source tree"
  elif git -C "$SOURCE" rev-parse --git-dir >/dev/null 2>&1 && git -C "$SOURCE" rev-parse -q --verify "$TAG^{commit}" >/dev/null; then
    git -C "$SOURCE" archive "$TAG" | tar -x -C "$dest"
  elif [ -f "$SOURCE/go.mod" ]; then
    cp -a "$SOURCE/." "$dest/"
  else
    die "$SOURCE is neither a source tree (no go.mod), a git repository with tag $TAG, nor a .tar.gz"
  fi
  grep -qx "module $MODULE" "$dest/go.mod" 2>/dev/null || die "$SOURCE: go.mod does not name module $MODULE"
  grep -q "^# \[$VERSION\]" "$dest/CHANGELOG.md" 2>/dev/null \
    || log "warning: $SOURCE's CHANGELOG.md has no $VERSION entry; building it as $VERSION all the same"
}

needs_zerolog_patch() {  # Debian 12's zerolog 1.26: CallerMarshalFunc without the pc argument
  grep -q 'CallerMarshalFunc = func(file string, line int) string' /usr/share/gocode/src/github.com/rs/zerolog/globals.go
}

work=$(mktemp -d "${TMPDIR:-/tmp}/toxiproxy-build.XXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/gopath/src/$MODULE
unpack_source "$tree"  # first: a wrong SOURCE fails before anything is installed
install_packages
if needs_zerolog_patch; then
  log "applying zerolog-1.26-caller.patch (Debian's zerolog is older than 1.27)"
  patch -s -p1 -d "$tree" <"$HERE/zerolog-1.26-caller.patch" || die "zerolog-1.26-caller.patch did not apply"
fi

export GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0
export GOPATH=$work/gopath:/usr/share/gocode GOCACHE=$work/gocache
mkdir -p "$OUT"
ldflags="-s -w -X $MODULE.Version=$VERSION"
for cmd in server cli; do
  (cd "$tree" && go build -ldflags "$ldflags" -o "$OUT/toxiproxy-$cmd.tmp" "./cmd/$cmd") || die "go build ./cmd/$cmd failed"
  mv "$OUT/toxiproxy-$cmd.tmp" "$OUT/toxiproxy-$cmd"
done
if [ $run_tests -eq 1 ]; then
  log "go test . ./stream ./toxics (Toxiproxy's own tests of the proxy path)"
  (cd "$tree" && go test -count=1 . ./stream ./toxics) || die "Toxiproxy's own tests failed against Debian's libraries"
fi
{
  echo "toxiproxy $VERSION built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $SOURCE"
  go version
  dpkg-query -W -f='${Package} ${Version}\n' "${PACKAGES[@]}"
  needs_zerolog_patch && echo "patched: zerolog-1.26-caller.patch"
} >"$OUT/BUILDINFO"
"$OUT/toxiproxy-server" -version
echo "$OUT/toxiproxy-server"
