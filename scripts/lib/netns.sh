# shellcheck shell=bash
#
# scripts/lib/netns.sh — hosts on one machine, for faults that cross a network: a network
# namespace per host, joined to the root namespace by veth pairs (iproute2 only), each
# link a /30 of its own, and links that can be cut and healed. Source it; do not execute
# it. Needs root (CAP_NET_ADMIN).
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib/netns.sh"
#     netns_init hf$$                  # names and a free 10.x.y.0/24 for this run
#     trap netns_cleanup EXIT
#     netns_add gw                     # namespace ${NETNS_PREFIX}gw
#     netns_link gw redis              # veth: NETNS_IP_gw_redis (the host's end),
#                                      # NETNS_PEER_gw_redis (the root namespace's end)
#     redis-server --bind 127.0.0.1 "$NETNS_PEER_gw_redis" ...
#     netns_exec gw herald-gateway     # runs in the namespace, reaches Redis at the peer
#     netns_cut gw redis; sleep 10; netns_heal gw redis
#
# A cut is a silent partition: both ends' neighbour entries for the other end are
# replaced with a MAC address nobody has, so every frame crossing the link in either
# direction is discarded by the receiving veth (not for this host). No RST, no ICMP, no
# error on the sender's socket, the link stays up and its routes stay: TCP retransmits
# into nothing and connects time out, as across a dead switch. Healing restores the real
# addresses; connections that did not give up meanwhile carry on. Each link has its own
# veth, so cutting one leaves the host's others alone.
#
# Functions:
#   netns_init PREFIX      the names of this run's namespaces and root-side veths start
#                          with PREFIX (hf<pid>, at most 9 characters: netns_sweep reads the pid);
#                          picks a 10.x.y.0/24 no route or address on this machine uses;
#                          removes what an earlier run with a dead pid left (netns_sweep)
#   netns_add HOST         a namespace for HOST, loopback up
#   netns_link HOST LINK   a veth pair: LINK inside HOST's namespace, the other end in the
#                          root one; sets NETNS_IP_<HOST>_<LINK> and NETNS_PEER_<HOST>_<LINK>
#   netns_exec HOST CMD... run CMD in HOST's namespace (exec: same pid)
#   netns_cut HOST LINK / netns_heal HOST LINK
#   netns_cleanup          delete this run's namespaces (their veths go with them) and any
#                          root-side veth left; idempotent, keeps the caller's exit status
#   netns_sweep            delete namespaces and veths of runs whose pid is gone

if [[ -n "${__HS_NETNS_SH_LOADED:-}" ]]; then
    return 0
fi
__HS_NETNS_SH_LOADED=1

# Frames to this address are for no one: see the header.
__NETNS_NOWHERE=02:00:00:00:00:00

__netns_name() { printf '%s%s\n' "$NETNS_PREFIX" "$1"; }
# The root-side veth of HOST's LINK: PREFIX + the first letters (15 characters at most).
__netns_root_dev() { printf '%s%.3s%.3s\n' "$NETNS_PREFIX" "$1" "$2"; }

netns_init() {
    NETNS_PREFIX=${1:?usage: netns_init PREFIX}
    ((${#NETNS_PREFIX} <= 9)) || die "netns_init: prefix '$NETNS_PREFIX' is longer than 9 characters"
    command -v ip >/dev/null || die "netns: iproute2 (ip) is needed"
    netns_sweep
    local used i a b
    used=$(ip -4 -o addr show; ip -4 route show table all)
    for ((i = 0; i < 100; i++)); do
        a=$((200 + RANDOM % 55)) b=$((RANDOM % 256))
        [[ "$used" == *" 10.$a.$b."* ]] && continue
        NETNS_NET="10.$a.$b"
        NETNS_NEXT=0
        NETNS_HOSTS=''
        export NETNS_PREFIX NETNS_NET
        return 0
    done
    die "netns: no free 10.x.y.0/24"
}

# netns_sweep — namespaces and veths named hf<pid>… whose pid no longer runs.
netns_sweep() {
    local name pid
    for name in $(ip netns list 2>/dev/null | awk '{print $1}') \
        $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        [[ "$name" =~ ^hf([0-9]+)[a-z] ]] || continue
        pid=${BASH_REMATCH[1]}
        kill -0 "$pid" 2>/dev/null && continue
        if ip netns list | awk '{print $1}' | grep -qx "$name"; then
            ip netns del "$name" 2>/dev/null && log "netns: removed namespace $name of a finished run (pid $pid)"
        else
            ip link del "$name" 2>/dev/null && log "netns: removed veth $name of a finished run (pid $pid)"
        fi
    done
}

netns_add() {
    local host=${1:?} ns
    ns=$(__netns_name "$host")
    ip netns add "$ns" || die "netns: cannot create namespace $ns"
    NETNS_HOSTS+="$host "
    ip -n "$ns" link set lo up
}

netns_link() {
    local host=${1:?} link=${2:?} ns dev base
    ns=$(__netns_name "$host")
    dev=$(__netns_root_dev "$host" "$link")
    base=$((NETNS_NEXT * 4))
    ((base < 252)) || die "netns: out of /30s in $NETNS_NET.0/24"
    NETNS_NEXT=$((NETNS_NEXT + 1))
    ip link add "$dev" type veth peer name "$link" netns "$ns" ||
        die "netns: cannot create veth $dev <-> $ns/$link"
    ip addr add "$NETNS_NET.$((base + 1))/30" dev "$dev"
    ip -n "$ns" addr add "$NETNS_NET.$((base + 2))/30" dev "$link"
    ip link set "$dev" up
    ip -n "$ns" link set "$link" up
    # Fixed neighbour entries from the start: a heal puts them back exactly.
    ip neigh replace "$NETNS_NET.$((base + 2))" lladdr "$(ip netns exec "$ns" cat "/sys/class/net/$link/address")" \
        dev "$dev" nud permanent
    ip -n "$ns" neigh replace "$NETNS_NET.$((base + 1))" lladdr "$(cat "/sys/class/net/$dev/address")" \
        dev "$link" nud permanent
    printf -v "NETNS_IP_${host}_${link}" '%s' "$NETNS_NET.$((base + 2))"
    printf -v "NETNS_PEER_${host}_${link}" '%s' "$NETNS_NET.$((base + 1))"
    export "NETNS_IP_${host}_${link}" "NETNS_PEER_${host}_${link}"
}

netns_exec() {
    local host=${1:?}
    shift
    exec ip netns exec "$(__netns_name "$host")" "$@"
}

# __netns_neigh HOST LINK nowhere|real — point both ends' neighbour entries.
__netns_neigh() {
    local host=$1 link=$2 to=$3 ns dev ip peer mac_ns mac_root
    ns=$(__netns_name "$host")
    dev=$(__netns_root_dev "$host" "$link")
    ip="NETNS_IP_${host}_${link}" peer="NETNS_PEER_${host}_${link}"
    [[ -n "${!ip:-}" ]] || die "netns: no link $link on $host"
    mac_ns=$__NETNS_NOWHERE mac_root=$__NETNS_NOWHERE
    if [[ "$to" == real ]]; then
        mac_ns=$(ip netns exec "$ns" cat "/sys/class/net/$link/address")
        mac_root=$(cat "/sys/class/net/$dev/address")
    fi
    ip neigh replace "${!ip}" lladdr "$mac_ns" dev "$dev" nud permanent &&
        ip -n "$ns" neigh replace "${!peer}" lladdr "$mac_root" dev "$link" nud permanent
}

netns_cut() {
    __netns_neigh "${1:?}" "${2:?}" nowhere || die "netns: cannot cut $2 of $1"
    log "netns: $1's link $2 cut (every packet across it dropped silently)"
}

netns_heal() {
    __netns_neigh "${1:?}" "${2:?}" real || die "netns: cannot heal $2 of $1"
    log "netns: $1's link $2 healed"
}

netns_cleanup() {
    local rc=$? host
    [[ -n "${NETNS_PREFIX:-}" ]] || return "$rc"
    for host in ${NETNS_HOSTS:-}; do
        ip netns del "$(__netns_name "$host")" 2>/dev/null || true
    done
    NETNS_HOSTS=''
    # A namespace goes when its last process does, and its veths with it; remove
    # root-side ends now, whatever still holds the namespace.
    local dev
    for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        [[ "$dev" == "$NETNS_PREFIX"* ]] && ip link del "$dev" 2>/dev/null
    done
    return "$rc"
}
