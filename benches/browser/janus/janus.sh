#!/usr/bin/env bash
# Janus for the browser-quality benchmark and the load generator: Debian's `janus` in its own
# network namespace.
#
#   janus.sh up DIR RELAY_IP   render the configs into DIR, (re)create the netns, start Janus,
#                              wait until its Admin API answers; prints "janus up" at the end
#   janus.sh net DIR           only (re)create the netns and its veth (the load generator runs
#                              kham there, so both servers are measured on the same path)
#   janus.sh down DIR          stop Janus and delete the netns (also fine if nothing runs)
#
# Environment (defaults are the browser benchmark's): KHAM_JANUS_NS (kham-janus),
# KHAM_JANUS_HOST_IF / KHAM_JANUS_NS_IF (khj0 / khj1), KHAM_JANUS_NET (10.77.0: host side .1,
# namespace side .2), KHAM_JANUS_PORT_FIRST / _LAST (20000 / 20019), KHAM_JANUS_CPU (unset: no
# pinning; else Janus runs under `taskset -c CPU`, all its threads).
#
# Why a netns: Janus skips loopback interfaces when gathering ICE candidates, so on a machine
# whose only route to the browsers is loopback it has nothing to offer. In the netns it has a
# veth (10.77.0.2, host side 10.77.0.1), and its candidates announce RELAY_IP (nat_1_1_mapping)
# where kham-relay listens and forwards to 10.77.0.2, port to port.
# Needs root (ip netns). Idempotent: `up` first cleans what a previous run left.
set -euo pipefail

NS=${KHAM_JANUS_NS:-kham-janus}
HOST_IF=${KHAM_JANUS_HOST_IF:-khj0} NS_IF=${KHAM_JANUS_NS_IF:-khj1}
NET=${KHAM_JANUS_NET:-10.77.0}
HOST_IP=$NET.1 JANUS_IP=$NET.2
CPU=${KHAM_JANUS_CPU:-}
PORT_FIRST=${KHAM_JANUS_PORT_FIRST:-20000}
PORT_LAST=${KHAM_JANUS_PORT_LAST:-20019}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "janus.sh: $*" >&2; exit 1; }

down() {
  local dir=$1
  if [[ -f $dir/janus.pid ]]; then
    local pid; pid=$(cat "$dir/janus.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/janus.pid"
  fi
  # Deleting the netns also deletes the veth pair; anything else still in it dies with it.
  if ip netns list | grep -qw "$NS"; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    ip netns delete "$NS"
  fi
  ip link delete "$HOST_IF" 2>/dev/null || true
}

# The netns and its veth (no Janus): what `up` and the load generator's kham runs need.
net() {
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "$NS_IF"
  ip link set "$NS_IF" netns "$NS"
  ip addr add "$HOST_IP/24" dev "$HOST_IF"
  # Janus (libnice) sends from an interface-bound socket, for which Linux treats a destination
  # without a route as on-link: it would ARP for the browser's host candidates (e.g. eth0's
  # address) on the veth, the host would answer (arp_ignore=0 answers for any local address),
  # and media would bypass the relay. Answer only for the veth's own address; the pages strip
  # their candidates on it from their SDP (configs/janus.mjs).
  sysctl -qw "net.ipv4.conf.$HOST_IF.arp_ignore=1"
  ip link set "$HOST_IF" up
  ip -n "$NS" addr add "$JANUS_IP/24" dev "$NS_IF"
  ip -n "$NS" link set "$NS_IF" up
  ip -n "$NS" link set lo up
  # Janus picks its local IP once at start and skips interfaces without a carrier yet.
  for _ in $(seq 50); do
    ip -n "$NS" -br link show "$NS_IF" | grep -q LOWER_UP && break
    sleep 0.1
  done
}

up() {
  local dir=$1 relay_ip=$2
  [[ $(id -u) == 0 ]] || die "needs root (ip netns)"
  command -v janus >/dev/null || {
    echo "janus.sh: installing Debian's janus" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y janus >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y janus >&2; }
  }
  local lib; lib=$(dirname "$(dpkg -L janus | grep '/plugins/libjanus_videoroom.so$' | head -1)")
  lib=${lib%/plugins}
  [[ -d $lib/plugins ]] || die "no Janus plugins folder found"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  down "$dir"

  # The admin secret guards only this loopback-reachable instance; random per run.
  local secret; secret=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  for t in "$HERE"/*.jcfg.in; do
    sed -e "s|@CONF_DIR@|$dir|g" -e "s|@LIB_DIR@|$lib|g" -e "s|@ADMIN_SECRET@|$secret|g" \
      -e "s|@RELAY_IP@|$relay_ip|g" -e "s|@PORT_FIRST@|$PORT_FIRST|g" \
      -e "s|@PORT_LAST@|$PORT_LAST|g" "$t" >"$dir/$(basename "${t%.in}")"
  done
  echo "$secret" >"$dir/admin_secret"

  net

  # setsid: Janus must not share the caller's process group (a Ctrl-C there is for the caller).
  local pin=()
  [[ -n $CPU ]] && pin=(taskset -c "$CPU")
  setsid ip netns exec "$NS" "${pin[@]}" janus -C "$dir/janus.jcfg" -F "$dir" -o \
    >"$dir/janus.out" 2>&1 </dev/null &
  echo $! >"$dir/janus.pid"
  for _ in $(seq 100); do
    if curl -sf -m 1 -H 'content-type: application/json' \
      -d "{\"janus\":\"info\",\"transaction\":\"up\",\"admin_secret\":\"$secret\"}" \
      "http://$JANUS_IP:7088/admin" >/dev/null &&
      (exec 3<>"/dev/tcp/$JANUS_IP/8188") 2>/dev/null; then
      echo "janus up: ws://$JANUS_IP:8188 admin http://$JANUS_IP:7088/admin ports $PORT_FIRST-$PORT_LAST announcing $relay_ip"
      return 0
    fi
    kill -0 "$(cat "$dir/janus.pid")" 2>/dev/null || { tail -20 "$dir/janus.out" >&2; die "janus exited"; }
    sleep 0.2
  done
  tail -20 "$dir/janus.out" >&2
  die "janus did not answer within 20 s"
}

case ${1:-} in
  up) [[ $# == 3 ]] || die "usage: janus.sh up DIR RELAY_IP"; up "$2" "$3" ;;
  net) [[ $# == 2 ]] || die "usage: janus.sh net DIR"; [[ $(id -u) == 0 ]] || die "needs root (ip netns)"
    mkdir -p "$2"; down "$2"; net; echo "netns $NS up: $HOST_IP (host) <-> $JANUS_IP" ;;
  down) [[ $# == 2 ]] || die "usage: janus.sh down DIR"; down "$2" ;;
  *) die "usage: janus.sh up DIR RELAY_IP | net DIR | down DIR" ;;
esac
