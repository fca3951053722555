#!/usr/bin/env bash
# Three hosts for a custody cluster, each in its own Linux network namespace with its own address,
# joined by a bridge that lives in a fourth namespace (the "switch"), so nothing is added to the
# host's own network stack. Run as root.
#
#   netns.sh up            create <prefix>-sw (bridge br0, 10.77.0.254) and <prefix>-n1..n3
#                          (10.77.0.1..3, one veth each to the bridge)
#   netns.sh down          delete the namespaces this script created (and with them their links)
#   netns.sh cut  <node>   take the node's link down on the switch side: the host is cut off
#   netns.sh heal <node>   bring it back
#   netns.sh exec <node|sw> <cmd...>   run a command inside a namespace
#
# CUSTODY_NETNS_PREFIX (default "custody") names the namespaces, so concurrent runs can coexist.
set -euo pipefail
prefix="${CUSTODY_NETNS_PREFIX:-custody}"
subnet="10.77.0"
nodes=(n1 n2 n3)

up() {
  ip netns add "${prefix}-sw"
  ip -n "${prefix}-sw" link set lo up
  ip -n "${prefix}-sw" link add br0 type bridge
  ip -n "${prefix}-sw" addr add "${subnet}.254/24" dev br0
  ip -n "${prefix}-sw" link set br0 up
  local i=0
  for n in "${nodes[@]}"; do
    i=$((i + 1))
    local ns="${prefix}-${n}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are created directly inside their namespaces.
    ip link add eth0 netns "$ns" type veth peer name "sw-${n}" netns "${prefix}-sw"
    ip -n "$ns" addr add "${subnet}.${i}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "${prefix}-sw" link set "sw-${n}" master br0
    ip -n "${prefix}-sw" link set "sw-${n}" up
  done
  echo "netns: ${prefix}-sw (${subnet}.254) and ${nodes[*]/#/${prefix}-} (${subnet}.1-${#nodes[@]}) are up"
}

down() {
  for n in "${nodes[@]}" sw; do
    if ip netns list | grep -qx "${prefix}-${n}\( (id: [0-9]*)\)\?"; then ip netns del "${prefix}-${n}"; fi
  done
  echo "netns: ${prefix}-* removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  cut) ip -n "${prefix}-sw" link set "sw-${2:?node}" down; echo "netns: ${2} cut off" ;;
  heal) ip -n "${prefix}-sw" link set "sw-${2:?node}" up; echo "netns: ${2} healed" ;;
  exec) ns="${prefix}-${2:?node or sw}"; shift 2; exec ip netns exec "$ns" "$@" ;;
  *) echo "usage: $0 up|down|cut <node>|heal <node>|exec <node|sw> <cmd...>" >&2; exit 2 ;;
esac
