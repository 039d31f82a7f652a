#!/usr/bin/env bash
# End-to-end tunnel throughput: ipsecgw and strongSwan measured IN THE SAME RUN.
#
#   sudo ./scripts/bench.sh            full run (all ciphers, -P 1 and -P 4, BENCH_T s per run)
#   sudo ./scripts/bench.sh --quick    smoke run: 3 s runs, aes256-sha1 only, -P 1
#
# Pairings (iperf3 TCP from LAN 10.1.0.1 on the left to LAN 10.2.0.1 on the right):
#   a  plain veth, no IPsec (ceiling)
#   b  strongSwan kernel-libipsec <-> strongSwan kernel-libipsec (ESP in UDP 4500, forced)
#   c  ipsecgw <-> ipsecgw, encap = "always" (ESP in UDP 4500: the fair comparison with b)
#   d  ipsecgw <-> ipsecgw, encap = "auto" (raw ESP, IP protocol 50)
#   e  ipsecgw (left, encrypts) <-> strongSwan (right, decrypts)
#   f  strongSwan (left, encrypts) <-> ipsecgw (right, decrypts)   [optional, not in the default set]
#   g  boringtun <-> boringtun (WireGuard, userspace; ChaCha20-Poly1305 whatever BENCH_ALGS says, so
#      measured once, with the first cipher)   [optional: needs boringtun-cli, `cargo install boringtun-cli`]
#   h, i  as c and d, with another ipsecgw binary (IPSECGW_BEFORE=path, e.g. a build of the previous
#      commit): before/after in one run   [optional]
#
# Env: BENCH_T (10)  seconds per iperf3 run
#      BENCH_ALGS ("aes256-sha1 aes128-sha1 3des-sha1 aes256gcm16")  ESP proposals
#      BENCH_REPEAT (1)  repetitions; each one sets up and runs every pairing back to back
#      BENCH_PAR ("1 4")  iperf3 -P values
#      BENCH_PAIRS ("a b c d e")
#      BORINGTUN_BIN (boringtun-cli from PATH or ~/.cargo/bin)  for pairing g; wg(8) comes from apt (wireguard-tools)
#      BENCH_OUT (/tmp/ipsecgw-bench-<date>.md)  results file; also <BENCH_OUT>.json and .svg (chart)
#      BENCH_TUNNELS ("")  also run two ipsecgw with N connections each (distinct IDs, own TUN each),
#                        e.g. "200 1000": time until all are up, threads, RSS per tunnel
#      BENCH_BUSY ("")  with BENCH_TUNNELS: iperf3 through 1 and then through K tunnels at once (one
#                        stream each, BENCH_T s), e.g. "50": aggregate Mbit/s over K busy tunnels vs one
#      BENCH_NO_BUILD=1  use the existing target/release/ipsecgw (IPSECGW_BIN overrides the path)
#      BENCH_KEEP=1      keep the work directory (configs, daemon logs, iperf3 JSON)
#      BENCH_PERF=1      `perf record -g -p PID` on every daemon during each iperf3 run; the reports
#                        (perf-<pairing>-<cipher>-P<n>-<side>.txt) land next to BENCH_OUT
#
# Needs root on Debian 12; installs strongSwan, iperf3 and jq with apt when missing.
# Every process it starts is stopped by PID and every namespace it creates is deleted on exit
# (also on error or Ctrl-C).
set -u
set -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument '$arg' (try --help)" >&2; exit 1 ;;
    esac
done

BENCH_T=${BENCH_T:-10}
BENCH_ALGS=${BENCH_ALGS:-aes256-sha1 aes128-sha1 3des-sha1 aes256gcm16}
BENCH_REPEAT=${BENCH_REPEAT:-1}
BENCH_PAR=${BENCH_PAR:-1 4}
BENCH_PAIRS=${BENCH_PAIRS:-a b c d e}
if [ $QUICK = 1 ]; then
    BENCH_T=3; BENCH_ALGS=aes256-sha1; BENCH_PAR=1
fi
STAMP=$(date -u +%Y%m%d-%H%M%S)
BENCH_OUT=${BENCH_OUT:-/tmp/ipsecgw-bench-$STAMP.md}
IPSECGW_BIN=${IPSECGW_BIN:-$REPO/target/release/ipsecgw}
IKE_PROPOSAL=aes256-sha1-modp1024
PSK="bench-psk-0123456789"
HZ=$(getconf CLK_TCK)

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "[bench] ERROR: $*" >&2; exit 1; }

case "$BENCH_T" in ''|*[!0-9]*) die "BENCH_T must be a whole number of seconds, not '$BENCH_T'" ;; esac
case "$BENCH_REPEAT" in ''|*[!0-9]*|0) die "BENCH_REPEAT must be a positive integer, not '$BENCH_REPEAT'" ;; esac
[ "$BENCH_T" -ge 1 ] || die "BENCH_T must be >= 1"
for p in $BENCH_PAIRS; do
    case "$p" in a|b|c|d|e|f|g|h|i) ;; *) die "BENCH_PAIRS: unknown pairing '$p' (a b c d e f g h i)" ;; esac
    case "$p" in h|i) [ -x "${IPSECGW_BEFORE:-}" ] || die "pairings h and i need IPSECGW_BEFORE=<ipsecgw binary>" ;; esac
done
for n in $BENCH_PAR; do
    case "$n" in ''|*[!0-9]*|0) die "BENCH_PAR: '$n' is not a positive integer" ;; esac
done
[ "$(id -u)" = 0 ] || die "run as root (network namespaces, TUN devices)"

# ---- state and cleanup ------------------------------------------------------------------
WORK=$(mktemp -d /tmp/ipsecgw-bench.XXXXXX) || die "mktemp failed"
PIDS=()        # every process we started and have not stopped yet (our children)
NSS=()         # every namespace we created and have not deleted yet
SEQ=0
RUNS=$WORK/runs.tsv
: > "$RUNS"
FAILED_RUNS=0

alive() { # true while the pid runs (a zombie counts as gone)
    local st
    st=$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

stop_pid() { # SIGTERM, up to 5 s, then SIGKILL; reaps it. Only pids from PIDS get here.
    local p=$1 i
    if alive "$p"; then
        kill -TERM "$p" 2>/dev/null
        for i in $(seq 50); do alive "$p" || break; sleep 0.1; done
        alive "$p" && kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    local keep=() q
    for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    PIDS=("${keep[@]}")
}

stop_all() {
    local i
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do stop_pid "${PIDS[$i]}"; done
    PIDS=()
}

del_namespaces() {
    local ns
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    NSS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    del_namespaces
    if [ $rc = 0 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "[bench] work directory (configs, logs, iperf3 JSON) kept: $WORK" >&2
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "[bench] interrupted" >&2; exit 130' INT TERM

wait_for() { # wait_for <seconds> <command...>
    local t=$1; shift
    local end=$(( $(date +%s) + t ))
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge $end ] && return 1
        sleep 0.2
    done
}

# ---- prerequisites ----------------------------------------------------------------------
PKGS=(strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
      libstrongswan-standard-plugins iperf3 jq iproute2 iputils-ping procps)
case " $BENCH_PAIRS " in *" g "*) PKGS+=(wireguard-tools) ;; esac
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
for t in ip iperf3 jq swanctl ping ss timeout; do
    command -v $t >/dev/null || die "'$t' not found after installing packages"
done
[ -x /usr/lib/ipsec/charon ] || die "/usr/lib/ipsec/charon missing (strongswan-charon)"
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] \
    || die "kernel-libipsec plugin missing (libcharon-extra-plugins)"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    command -v cargo >/dev/null || die "cargo not found (install Rust, or set BENCH_NO_BUILD=1 IPSECGW_BIN=...)"
    log "building ipsecgw (cargo build --release --bin ipsecgw)"
    (cd "$REPO" && cargo build --release --bin ipsecgw) >"$WORK/build.log" 2>&1 \
        || { tail -n 40 "$WORK/build.log" >&2; die "cargo build --release failed"; }
fi
[ -x "$IPSECGW_BIN" ] || die "ipsecgw binary not found at $IPSECGW_BIN"
# run a private copy: a rebuild during the benchmark must not mix two versions in one table
BIN_BUILT=$(date -u -r "$IPSECGW_BIN" '+%Y-%m-%d %H:%M UTC')
cp "$IPSECGW_BIN" "$WORK/ipsecgw" || die "cannot copy $IPSECGW_BIN"
IPSECGW_BIN=$WORK/ipsecgw
if [ -n "${IPSECGW_BEFORE:-}" ]; then
    cp "$IPSECGW_BEFORE" "$WORK/ipsecgw-before" || die "cannot copy $IPSECGW_BEFORE"
    IPSECGW_BEFORE=$WORK/ipsecgw-before
fi
GW_BIN=$IPSECGW_BIN  # the binary start_ipsecgw runs (pairings h and i switch it)

# ---- lab: one fresh namespace pair per setup ----------------------------------------------
NSL="" NSR="" DIR=""
ns_of()  { [ "$1" = left ] && echo "$NSL" || echo "$NSR"; }
peer_of() { [ "$1" = left ] && echo right || echo left; }
ul_ip()  { [ "$1" = left ] && echo 192.0.2.1 || echo 192.0.2.2; }
lan_ip() { [ "$1" = left ] && echo 10.1.0.1 || echo 10.2.0.1; }
lan_net() { [ "$1" = left ] && echo 10.1.0.0/24 || echo 10.2.0.0/24; }
tun_ip() { [ "$1" = left ] && echo 10.255.0.1 || echo 10.255.0.2; }

new_pair() { # <label>: namespaces, veth underlay, ifb "LAN" on each side
    local s ns ul
    SEQ=$((SEQ + 1))
    NSL="igbl$$-$SEQ"; NSR="igbr$$-$SEQ"
    DIR=$WORK/$SEQ-$1
    mkdir -p "$DIR/left" "$DIR/right" || die "mkdir $DIR"
    ip netns add "$NSL" || die "ip netns add $NSL"
    NSS+=("$NSL")
    ip netns add "$NSR" || die "ip netns add $NSR"
    NSS+=("$NSR")
    ip link add ul-l netns "$NSL" type veth peer name ul-r netns "$NSR" || die "veth"
    for s in left right; do
        ns=$(ns_of $s); [ $s = left ] && ul=ul-l || ul=ul-r
        ip -n "$ns" link set lo up || die "lo up in $ns"
        ip -n "$ns" addr add "$(ul_ip $s)/24" dev $ul || die "underlay address in $ns"
        ip -n "$ns" link set $ul up || die "$ul up"
        # this kernel has no dummy driver: ifb is an always-up stand-in LAN interface
        ip -n "$ns" link add lan0 type ifb || die "ifb lan0 in $ns (CONFIG_IFB?)"
        ip -n "$ns" addr add "$(lan_ip $s)/24" dev lan0 || die "LAN address in $ns"
        ip -n "$ns" link set lan0 up || die "lan0 up"
    done
    wait_for 5 ip netns exec "$NSL" ping -c1 -W1 192.0.2.2 || die "underlay veth does not pass traffic"
}

end_pair() { stop_all; del_namespaces; }

LAST_PID=""
spawn() { # <side> <name> <command...>: runs in the side's namespace; pid in LAST_PID
    local side=$1 name=$2; shift 2
    ip netns exec "$(ns_of $side)" "$@" >"$DIR/$side/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

fail_setup() { # <what>: daemon log tails, then exit 1
    local f
    echo "[bench] ERROR: $1" >&2
    for f in "$DIR"/left/*.log "$DIR"/right/*.log; do
        [ -f "$f" ] || continue
        echo "===== $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}

# ---- strongSwan (charon with kernel-libipsec, one instance per namespace) ------------------
sw() { # sw <side> <swanctl args...>
    local side=$1; shift
    STRONGSWAN_CONF=$DIR/$side/strongswan.conf swanctl "$@" --uri "unix://$DIR/$side/charon.vici"
}

start_charon() { # <side> <esp proposal>; pid in LAST_PID
    local side=$1 esp=$2 d=$DIR/$1 peer
    peer=$(peer_of $side)
    mkdir -p "$d/varrun"
    cat >"$d/strongswan.conf" <<EOF
# charon for the benchmark: stock crypto (openssl), kernel-libipsec as the IPsec backend
# (this kernel has no ESP), its own vici socket and log. kdf is required since 5.9.6.
charon {
    load_modular = no
    load = random nonce openssl gmp aes gcm sha1 sha2 hmac kdf kernel-libipsec kernel-netlink socket-default vici updown
    port = 500
    port_nat_t = 4500
    install_routes = no
    retransmit_tries = 3
    retransmit_timeout = 2.0
    plugins {
        # TS are 0.0.0.0/0: keep kernel-libipsec's table-220 default route inert
        kernel-netlink {
            fwmark = 0x2200
        }
        vici {
            socket = unix://$d/charon.vici
        }
    }
    filelog {
        bench {
            path = $d/charon.log
            time_format = %H:%M:%S
            time_add_ms = yes
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
            ike = 1
            cfg = 1
            knl = 1
        }
    }
    syslog {
        daemon {
            default = -1
        }
    }
}
EOF
    cat >"$d/swanctl.conf" <<EOF
connections {
    gw {
        version = 2
        local_addrs = $(ul_ip $side)
        remote_addrs = $(ul_ip $peer)
        proposals = $IKE_PROPOSAL
        encap = no          # kernel-libipsec forces UDP 4500 anyway
        mobike = no
        dpd_delay = 10s
        rekey_time = 4h
        local {
            auth = psk
            id = $(ul_ip $side)
        }
        remote {
            auth = psk
            id = $(ul_ip $peer)
        }
        children {
            net {
                mode = tunnel
                local_ts = 0.0.0.0/0
                remote_ts = 0.0.0.0/0
                esp_proposals = $esp
                start_action = none
                dpd_action = restart
                close_action = none
                rekey_time = 1h
            }
        }
    }
}
secrets {
    ike-gw {
        id-a = $(ul_ip $side)
        id-b = $(ul_ip $peer)
        secret = "$PSK"
    }
}
EOF
    # charon 5.9.8 has a fixed pidfile /run/charon.pid: bind a private dir over /run
    # (ip netns exec gives a private mount namespace), then exec charon (same pid).
    spawn $side charon sh -c "mount --bind '$d/varrun' /run && exec env STRONGSWAN_CONF='$d/strongswan.conf' /usr/lib/ipsec/charon"
    local pid=$LAST_PID
    wait_for 15 test -S "$d/charon.vici" || fail_setup "charon ($side) did not open its vici socket"
    [ "$(cat /proc/$pid/comm 2>/dev/null)" = charon ] || fail_setup "pid $pid ($side) is not charon"
    sw $side --load-all --file "$d/swanctl.conf" >"$d/swanctl-load.log" 2>&1 \
        || fail_setup "swanctl --load-all ($side) failed: $(cat "$d/swanctl-load.log")"
    # ipsec0 (the libipsec TUN) exists while charon runs; route the other LAN into it
    wait_for 10 ip -n "$(ns_of $side)" route replace "$(lan_net $peer)" dev ipsec0 src "$(lan_ip $side)" \
        || fail_setup "cannot route $(lan_net $peer) via strongSwan's ipsec0 ($side)"
    LAST_PID=$pid
}

# ---- ipsecgw ----------------------------------------------------------------------------
start_ipsecgw() { # <side> <esp> <encap> <start_action>; pid in LAST_PID
    local side=$1 esp=$2 encap=$3 start=$4 d=$DIR/$1 peer
    peer=$(peer_of $side)
    cat >"$d/ipsecgw.toml" <<EOF
[global]
control_socket = "$d/ipsecgw.sock"
log_level = "info"
retransmit_timeout = "1s"
retransmit_tries = 3

[[connection]]
name = "gw"
local_addrs = ["$(ul_ip $side)"]
remote_addrs = ["$(ul_ip $peer)"]
local_id = "$(ul_ip $side)"
remote_id = "$(ul_ip $peer)"
psk = "$PSK"
ike_proposals = ["$IKE_PROPOSAL"]
start_action = "$start"
encap = "$encap"
dpd_delay = "10s"

[[connection.children]]
name = "net"
local_ts = ["0.0.0.0/0"]
remote_ts = ["0.0.0.0/0"]
esp_proposals = ["$esp"]

[connection.tunnel]
interface = "ipsec30"
address = "$(tun_ip $side)/32"
mtu = 1400
routes = ["$(lan_net $peer)"]
EOF
    spawn $side ipsecgw "$GW_BIN" run --config "$d/ipsecgw.toml"
    local pid=$LAST_PID
    wait_for 10 test -S "$d/ipsecgw.sock" || fail_setup "ipsecgw ($side) did not open its control socket"
    LAST_PID=$pid
}

gw_status() { "$IPSECGW_BIN" --socket "$DIR/$1/ipsecgw.sock" status --json 2>/dev/null; }
gw_child_installed() { gw_status $1 | jq -e '.connections[0].children[0].state == "installed"' >/dev/null; }

gw_esp() { # the CHILD SA's algorithms as ipsecgw reports them
    gw_status $1 | jq -r '.connections[0].children[0] | [.encr, .integ] | map(select(. != null and . != "")) | join("/")'
}
swan_esp() { # the CHILD SA's algorithms as strongSwan reports them (from list-sas.txt)
    grep -o 'ESP:[^ ,]*' "$DIR/$1/list-sas.txt" | head -n 1 | cut -d: -f2
}

lan_ping() { ip netns exec "$NSL" ping -c1 -W1 -I 10.1.0.1 10.2.0.1; }

# ---- boringtun (WireGuard in userspace, Cloudflare's Rust implementation) -----------------------
BORINGTUN_BIN=${BORINGTUN_BIN:-$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")}
start_boringtun() { # <side> <ifname>; pid in LAST_PID
    local side=$1 ifn=$2 d=$DIR/$1
    rm -f "/var/run/wireguard/$ifn.sock"
    spawn $side boringtun env WG_SUDO=1 "$BORINGTUN_BIN" --foreground --disable-drop-privileges "$ifn"
    local pid=$LAST_PID
    wait_for 10 test -S "/var/run/wireguard/$ifn.sock" || fail_setup "boringtun ($side) did not open its UAPI socket"
    wg genkey >"$d/wg.key" && wg pubkey <"$d/wg.key" >"$d/wg.pub" || fail_setup "wg genkey failed"
    LAST_PID=$pid
}

# ---- setups: each sets DAEMONS (pids whose CPU is measured), SERVER_IP, CLIENT_IP, TRANSPORT --
DAEMONS="" TRANSPORT="" NEGOTIATED=""

setup_a() { # plain veth: LAN-to-LAN routed over the underlay
    new_pair "a-veth"
    ip -n "$NSL" route add 10.2.0.0/24 via 192.0.2.2 src 10.1.0.1 || die "route (a)"
    ip -n "$NSR" route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1 || die "route (a)"
    wait_for 5 lan_ping || fail_setup "plain veth: no LAN-to-LAN ping"
    DAEMONS="" TRANSPORT="-" NEGOTIATED="-"
}

setup_b() { # <esp>
    local esp=$1 pl pr out
    new_pair "b-sswan-$esp"
    start_charon right "$esp"; pr=$LAST_PID
    start_charon left "$esp"; pl=$LAST_PID
    out=$(sw left --initiate --child net --timeout 20 2>&1) \
        || { echo "$out" | tail -n 15 >&2; fail_setup "strongSwan <-> strongSwan ($esp): tunnel did not come up"; }
    wait_for 15 lan_ping || fail_setup "strongSwan <-> strongSwan ($esp): SA up but no LAN-to-LAN ping"
    sw left --list-sas >"$DIR/left/list-sas.txt" 2>&1
    grep -q "TUNNEL-in-UDP" "$DIR/left/list-sas.txt" && TRANSPORT="udp/4500" || TRANSPORT="?"
    NEGOTIATED=$(swan_esp left)
    DAEMONS="$pl $pr"
}

setup_gw_pair() { # <esp> <encap>
    local esp=$1 encap=$2 pl pr want got
    new_pair "gw-$encap-$esp"
    start_ipsecgw right "$esp" "$encap" none; pr=$LAST_PID
    start_ipsecgw left "$esp" "$encap" start; pl=$LAST_PID
    wait_for 20 gw_child_installed left \
        || { gw_status left >&2; fail_setup "ipsecgw <-> ipsecgw ($esp, encap=$encap): CHILD SA not installed within 20 s"; }
    wait_for 15 lan_ping || fail_setup "ipsecgw <-> ipsecgw ($esp, encap=$encap): SA installed but no LAN-to-LAN ping"
    got=$(gw_status left | jq -r '.connections[0].children[0].encap')
    [ "$encap" = always ] && want=udp || want=none
    [ "$got" = "$want" ] || fail_setup "ipsecgw encap=$encap: expected ESP transport '$want', status says '$got'"
    [ "$got" = udp ] && TRANSPORT="udp/4500" || TRANSPORT="esp/50"
    NEGOTIATED=$(gw_esp left)
    DAEMONS="$pl $pr"
}
setup_c() { GW_BIN=$IPSECGW_BIN; setup_gw_pair "$1" always; }
setup_d() { GW_BIN=$IPSECGW_BIN; setup_gw_pair "$1" auto; }
setup_h() { GW_BIN=$IPSECGW_BEFORE; setup_gw_pair "$1" always; GW_BIN=$IPSECGW_BIN; }
setup_i() { GW_BIN=$IPSECGW_BEFORE; setup_gw_pair "$1" auto; GW_BIN=$IPSECGW_BIN; }

setup_e() { # <esp>: ipsecgw initiator (left) -> strongSwan responder (right)
    local esp=$1 pl pr
    new_pair "e-mixed-$esp"
    start_charon right "$esp"; pr=$LAST_PID
    start_ipsecgw left "$esp" auto start; pl=$LAST_PID
    wait_for 20 gw_child_installed left \
        || { gw_status left >&2; fail_setup "ipsecgw -> strongSwan ($esp): CHILD SA not installed within 20 s"; }
    wait_for 15 lan_ping || fail_setup "ipsecgw -> strongSwan ($esp): SA installed but no LAN-to-LAN ping"
    [ "$(gw_status left | jq -r '.connections[0].children[0].encap')" = udp ] && TRANSPORT="udp/4500" || TRANSPORT="?"
    sw right --list-sas >"$DIR/right/list-sas.txt" 2>&1
    NEGOTIATED="$(gw_esp left) = $(swan_esp right)"
    DAEMONS="$pl $pr"
}

setup_f() { # <esp>: strongSwan initiator (left) -> ipsecgw responder (right)
    local esp=$1 pl pr out
    new_pair "f-mixed-$esp"
    start_ipsecgw right "$esp" auto none; pr=$LAST_PID
    start_charon left "$esp"; pl=$LAST_PID
    out=$(sw left --initiate --child net --timeout 20 2>&1) \
        || { echo "$out" | tail -n 15 >&2; fail_setup "strongSwan -> ipsecgw ($esp): tunnel did not come up"; }
    wait_for 10 gw_child_installed right || { gw_status right >&2; fail_setup "strongSwan -> ipsecgw ($esp): ipsecgw shows no installed CHILD SA"; }
    wait_for 15 lan_ping || fail_setup "strongSwan -> ipsecgw ($esp): SA installed but no LAN-to-LAN ping"
    [ "$(gw_status right | jq -r '.connections[0].children[0].encap')" = udp ] && TRANSPORT="udp/4500" || TRANSPORT="?"
    sw left --list-sas >"$DIR/left/list-sas.txt" 2>&1
    NEGOTIATED="$(swan_esp left) = $(gw_esp right)"
    DAEMONS="$pl $pr"
}

setup_g() { # boringtun <-> boringtun; the cipher argument does not apply (WireGuard)
    local pl pr side ifn peer
    [ -x "$BORINGTUN_BIN" ] || fail_setup "boringtun-cli not found (cargo install boringtun-cli, or set BORINGTUN_BIN)"
    new_pair "g-boringtun"
    start_boringtun right "wgr$$"; pr=$LAST_PID
    start_boringtun left "wgl$$"; pl=$LAST_PID
    for side in left right; do
        [ $side = left ] && ifn="wgl$$" || ifn="wgr$$"
        peer=$(peer_of $side)
        ip netns exec "$(ns_of $side)" wg set "$ifn" private-key "$DIR/$side/wg.key" listen-port 51820 \
            peer "$(cat "$DIR/$peer/wg.pub")" endpoint "$(ul_ip $peer):51820" allowed-ips 0.0.0.0/0 \
            || fail_setup "wg set ($side) failed"
        ip -n "$(ns_of $side)" addr add "$(tun_ip $side)/32" dev "$ifn" || fail_setup "address on $ifn"
        ip -n "$(ns_of $side)" link set "$ifn" mtu 1400 up || fail_setup "$ifn up"
        ip -n "$(ns_of $side)" route replace "$(lan_net $peer)" dev "$ifn" src "$(lan_ip $side)" \
            || fail_setup "route via $ifn"
    done
    wait_for 15 lan_ping || fail_setup "boringtun <-> boringtun: no LAN-to-LAN ping"
    TRANSPORT="wg/udp" NEGOTIATED="WireGuard chacha20poly1305"
    DAEMONS="$pl $pr"
}

# ---- measurement --------------------------------------------------------------------------
cpu_ticks() { # utime+stime of the whole process (all threads), clock ticks
    sed 's/.*) //' /proc/$1/stat 2>/dev/null | awk '{print $12+$13}'
}
udp_rcvbuf_errors() { # UDP RcvbufErrors of a namespace
    ip netns exec "$1" cat /proc/net/snmp | awk '/^Udp:/{ if (!h) { for (i=1;i<=NF;i++) if ($i=="RcvbufErrors") c=i; h=1 } else { print $c; exit } }'
}
raw_drops() { # drops of all raw sockets of a namespace (raw ESP receive path)
    ip netns exec "$1" cat /proc/net/raw | awk 'NR>1{s+=$NF} END{print s+0}'
}

kernel_drops() { # interface rx/tx drops + qdisc drops in both namespaces, + softnet backlog drops (host-wide)
    local ns n=0 x
    for ns in "$NSL" "$NSR"; do
        x=$(ip netns exec "$ns" sh -c 'cat /sys/class/net/*/statistics/rx_dropped /sys/class/net/*/statistics/tx_dropped' 2>/dev/null \
            | awk '{s+=$1} END{print s+0}')
        n=$((n + x))
        # mq only sums its children: skip it so nothing counts twice
        x=$(tc -n "$ns" -s qdisc show 2>/dev/null | awk '/^qdisc/{skip=($2=="mq")} /dropped/ && !skip {
                for (i=1;i<NF;i++) if ($i=="(dropped") { v=$(i+1); sub(",","",v); s+=v } } END{print s+0}')
        n=$((n + x))
    done
    local _p d _r
    while read -r _p d _r; do n=$((n + 0x$d)); done </proc/net/softnet_stat
    echo $n
}
gw_drops() { # packets ipsecgw counted as dropped (any reason), both sides; "-" without ipsecgw
    local side n=0 any=0 x
    for side in left right; do
        [ -S "$DIR/$side/ipsecgw.sock" ] || continue
        x=$(gw_status $side | jq '[.connections[].counters.drops // {} | to_entries[].value] | add // 0' 2>/dev/null) || x=0
        n=$((n + ${x:-0})); any=1
    done
    [ $any = 1 ] && echo $n || echo -
}

SERVER_PID=""
start_server() {
    spawn right iperf3 iperf3 -s -B 10.2.0.1
    SERVER_PID=$LAST_PID
    wait_for 5 sh -c "ip netns exec '$NSR' ss -ltnH | grep -q '10.2.0.1:5201'" || fail_setup "iperf3 server did not listen"
}

run_iperf() { # <rep> <pairing> <esp> <parallel>: one measurement, appended to $RUNS
    local rep=$1 pair=$2 esp=$3 par=$4 p before=() after=() rb0 rb1 rw0 rw1 kd0 kd1 gd0 gd1 t0 t1 i cpu
    local json=$DIR/iperf-P$par.json
    for p in $DAEMONS; do before+=("$(cpu_ticks $p)"); done
    rb0=$(udp_rcvbuf_errors "$NSR"); rw0=$(raw_drops "$NSR"); kd0=$(kernel_drops); gd0=$(gw_drops)
    local perfs=() side_i=0
    if [ "${BENCH_PERF:-0}" = 1 ]; then
        for p in $DAEMONS; do
            side_i=$((side_i + 1))
            perf record -g -p "$p" -o "$DIR/perf-$side_i.data" -- sleep $((BENCH_T > 2 ? BENCH_T - 1 : 1)) \
                >/dev/null 2>&1 &
            perfs+=("$!")
            PIDS+=("$!")
        done
    fi
    t0=$(date +%s.%N)
    # in the background + wait, so Ctrl-C/TERM reach our trap at once
    ip netns exec "$NSL" timeout $((BENCH_T + 30)) iperf3 -c 10.2.0.1 -B 10.1.0.1 -t "$BENCH_T" -P "$par" -J \
        --connect-timeout 5000 >"$json" 2>"$DIR/iperf-P$par.err" </dev/null &
    local cp=$!
    PIDS+=("$cp")
    wait $cp
    local rc=$?
    local keep=() q
    for q in "${PIDS[@]}"; do [ "$q" = "$cp" ] || keep+=("$q"); done
    PIDS=("${keep[@]}")
    t1=$(date +%s.%N)
    if [ ${#perfs[@]} -gt 0 ]; then
        local pp k=0 sides=(left right)
        for pp in "${perfs[@]}"; do wait "$pp" 2>/dev/null; done
        for pp in "${perfs[@]}"; do
            local keep2=() q2
            for q2 in "${PIDS[@]}"; do [ "$q2" = "$pp" ] || keep2+=("$q2"); done
            PIDS=("${keep2[@]}")
        done
        for pp in "${perfs[@]}"; do
            k=$((k + 1))
            perf report -i "$DIR/perf-$k.data" --no-children --percent-limit 0.5 --stdio -g none \
                >"${BENCH_OUT%.md}-perf-$pair-$esp-P$par-${sides[$((k - 1))]}.txt" 2>/dev/null
        done
    fi
    rb1=$(udp_rcvbuf_errors "$NSR"); rw1=$(raw_drops "$NSR"); kd1=$(kernel_drops); gd1=$(gw_drops)
    # where kernel drops happened, per interface (kept with BENCH_KEEP=1)
    { ip -n "$NSL" -s link; ip -n "$NSR" -s link; } >"$DIR/links-P$par.txt" 2>&1
    for p in $DAEMONS; do after+=("$(cpu_ticks $p)"); done
    cpu=""
    i=0
    for p in $DAEMONS; do
        cpu="$cpu${cpu:+/}$(awk -v a="${after[$i]:-0}" -v b="${before[$i]:-0}" -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
            'BEGIN{printf "%.0f", 100*(a-b)/hz/(t1-t0)}')"
        i=$((i + 1))
    done
    [ -n "$cpu" ] || cpu="-"
    local mbps retr err
    mbps=$(jq -r '(.end.sum_received.bits_per_second // 0) / 1e6 | floor' "$json" 2>/dev/null) || mbps=0
    retr=$(jq -r '.end.sum_sent.retransmits // "-"' "$json" 2>/dev/null) || retr="-"
    err=$(jq -r '.error // empty' "$json" 2>/dev/null)
    local status=ok
    if [ $rc != 0 ] || [ -n "$err" ] || [ "${mbps:-0}" = 0 ]; then
        status="FAILED(rc=$rc${err:+: $err})"
        FAILED_RUNS=$((FAILED_RUNS + 1))
        log "iperf3 run failed: $pair $esp -P $par: rc=$rc ${err:-$(tail -n 3 "$DIR/iperf-P$par.err")}"
        mbps=0
    fi
    local rawd="-" gwd="-"
    case $pair in d|i) rawd=$((rw1 - rw0)) ;; esac
    [ "$gd0" != - ] && [ "$gd1" != - ] && gwd=$((gd1 - gd0))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$pair" "$esp" "$par" "$mbps" "$retr" \
        "$cpu" "$((rb1 - rb0))" "$rawd" "$TRANSPORT" "$(cut -d' ' -f1 /proc/loadavg)" "$status" "$NEGOTIATED" "$((kd1 - kd0))" "$gwd" >>"$RUNS"
    log "$(printf '%-2s %-12s -P %s  %6s Mbit/s  retr %-6s cpu(L/R %%) %-9s rcvbuf %s%s kdrops %s gwdrops %s' "$pair" "$esp" "$par" \
        "$mbps" "$retr" "$cpu" "$((rb1 - rb0))" "$([ "$rawd" = - ] || echo " rawdrops $rawd")" "$((kd1 - kd0))" "$gwd")"
}

measure() { # <rep> <pairing> <esp>
    local rep=$1 pair=$2 esp=$3 par
    log "setup ($pair) $esp"
    case $pair in
        a) setup_a ;;
        *) setup_$pair "$esp" ;;
    esac
    start_server
    for par in $BENCH_PAR; do run_iperf "$rep" "$pair" "$esp" "$par"; done
    end_pair
}


# ---- many tunnels: two ipsecgw with N connections each ----------------------------------------
TUNNELS_TSV=$WORK/tunnels.tsv
: > "$TUNNELS_TSV"
many_conf() { # <side> <n>: N connections between the same two addresses, told apart by ID
    local side=$1 n=$2 d=$DIR/$1 peer i start me other
    peer=$(peer_of $side)
    [ $side = left ] && start=start || start=none
    [ $side = left ] && { me=1; other=2; } || { me=2; other=1; }
    {
        echo '[global]'
        echo "control_socket = \"$d/ipsecgw.sock\""
        echo 'log_level = "warn"'
        for i in $(seq 1 "$n"); do
            local net="10.$((100 + (i >> 8))).$((i & 255))"
            printf '\n[[connection]]\nname = "t%s"\nlocal_addrs = ["%s"]\nremote_addrs = ["%s"]\n' "$i" "$(ul_ip $side)" "$(ul_ip $peer)"
            printf 'local_id = "%s-%s.bench.example"\nremote_id = "%s-%s.bench.example"\n' "$side" "$i" "$peer" "$i"
            printf 'psk = "%s"\nike_proposals = ["%s"]\nstart_action = "%s"\ndpd_delay = "30s"\n' "$PSK" "$IKE_PROPOSAL" "$start"
            printf '\n[[connection.children]]\nname = "net"\nlocal_ts = ["%s.%s/32"]\nremote_ts = ["%s.%s/32"]\nesp_proposals = ["aes256-sha1"]\n' \
                "$net" "$me" "$net" "$other"
            printf '\n[connection.tunnel]\ninterface = "bt%s"\naddress = "%s.%s/32"\nmtu = 1400\nroutes = ["%s.%s/32"]\n' \
                "$i" "$net" "$me" "$net" "$other"
        done
    } >"$d/ipsecgw.toml"
}

BUSY_TSV=$WORK/busy.tsv
: > "$BUSY_TSV"
busy_run() { # <n tunnels up> <k>: one iperf3 stream through each of tunnels 1..k at once; sum Mbit/s
    local n=$1 k=$2 i net servers=() clients=() p sum f
    for i in $(seq 1 "$k"); do
        net="10.$((100 + (i >> 8))).$((i & 255))"
        spawn right "iperf3-s$i" iperf3 -s -B "$net.2"
        servers+=("$LAST_PID")
    done
    for i in $(seq 1 "$k"); do
        net="10.$((100 + (i >> 8))).$((i & 255))"
        wait_for 10 sh -c "ip netns exec '$NSR' ss -ltnH | grep -q '$net.2:5201'" || fail_setup "iperf3 server $net.2 did not listen"
    done
    for i in $(seq 1 "$k"); do
        net="10.$((100 + (i >> 8))).$((i & 255))"
        ip netns exec "$NSL" timeout $((BENCH_T + 30)) iperf3 -c "$net.2" -B "$net.1" -t "$BENCH_T" -J \
            --connect-timeout 10000 >"$DIR/busy-$k-$i.json" 2>&1 </dev/null &
        clients+=("$!"); PIDS+=("$!")
    done
    for p in "${clients[@]}"; do wait "$p"; done
    for p in "${clients[@]}"; do
        local keep=() q
        for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
        PIDS=("${keep[@]}")
    done
    for p in "${servers[@]}"; do stop_pid "$p"; done
    sum=0; local ok=0
    for i in $(seq 1 "$k"); do
        f=$(jq -r '(.end.sum_received.bits_per_second // 0) / 1e6' "$DIR/busy-$k-$i.json" 2>/dev/null) || f=0
        awk -v f="${f:-0}" 'BEGIN{exit !(f > 0)}' && ok=$((ok + 1))
        sum=$(awk -v a="$sum" -v b="${f:-0}" 'BEGIN{printf "%.0f", a + b}')
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$k" "$sum" "$ok" "$(cut -d' ' -f1 /proc/loadavg)" >>"$BUSY_TSV"
    log "$k of $n tunnels busy: $sum Mbit/s in all ($ok of $k streams ran)"
    [ "$ok" = "$k" ] || { FAILED_RUNS=$((FAILED_RUNS + 1)); log "only $ok of $k iperf3 streams ran"; }
}

rss_kib() { awk '/^VmRSS/{print $2}' /proc/$1/status 2>/dev/null; }
threads_of() { awk '/^Threads/{print $2}' /proc/$1/status 2>/dev/null; }

measure_tunnels() { # <n>
    local n=$1 pl pr t0 t1 up=0
    log "setup: $n tunnels"
    new_pair "many-$n"
    many_conf right "$n"; many_conf left "$n"
    spawn right ipsecgw "$IPSECGW_BIN" run --config "$DIR/right/ipsecgw.toml"; pr=$LAST_PID
    wait_for 60 test -S "$DIR/right/ipsecgw.sock" || fail_setup "ipsecgw (right, $n tunnels) did not start"
    t0=$(date +%s.%N)
    spawn left ipsecgw "$IPSECGW_BIN" run --config "$DIR/left/ipsecgw.toml"; pl=$LAST_PID
    local deadline=$(( $(date +%s) + 60 + n / 10 ))
    while [ "$(date +%s)" -lt $deadline ]; do
        up=$(gw_status left | jq '[.connections[].children[]? | select(.state == "installed")] | length' 2>/dev/null)
        [ "${up:-0}" -ge "$n" ] && break
        sleep 0.2
    done
    t1=$(date +%s.%N)
    local secs threads_l threads_r rss_l rss_r
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
    sleep 2  # settle, then sample idle memory and threads
    threads_l=$(threads_of $pl); threads_r=$(threads_of $pr); rss_l=$(rss_kib $pl); rss_r=$(rss_kib $pr)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "${up:-0}" "$secs" "$threads_l" "$threads_r" "$rss_l" "$rss_r" \
        "$(cut -d' ' -f1 /proc/loadavg)" >>"$TUNNELS_TSV"
    log "$n tunnels: ${up:-0} up after $secs s; threads L/R $threads_l/$threads_r; RSS L/R ${rss_l}/${rss_r} KiB"
    [ "${up:-0}" -ge "$n" ] || log "only ${up:-0} of $n tunnels came up"
    local k
    for k in ${BENCH_BUSY:-}; do
        [ "$k" -le "$n" ] && [ "${up:-0}" -ge "$n" ] || continue
        busy_run "$n" 1
        busy_run "$n" "$k"
    done
    end_pair
}

# ---- the run -------------------------------------------------------------------------------
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
GW_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || GW_REV="$GW_REV+uncommitted"
SW_VER=$(dpkg-query -W -f='${Version}' strongswan-charon 2>/dev/null)
IPERF_VER=$(iperf3 --version 2>/dev/null | head -1)
CMDLINE="BENCH_T=$BENCH_T BENCH_ALGS=\"$BENCH_ALGS\" BENCH_REPEAT=$BENCH_REPEAT BENCH_PAR=\"$BENCH_PAR\" BENCH_PAIRS=\"$BENCH_PAIRS\"${BENCH_TUNNELS:+ BENCH_TUNNELS=\"$BENCH_TUNNELS\"}${BENCH_BUSY:+ BENCH_BUSY=\"$BENCH_BUSY\"} scripts/bench.sh$([ $QUICK = 1 ] && echo ' --quick')"
log "work dir $WORK; results -> $BENCH_OUT"

FIRST_ALG=$(echo $BENCH_ALGS | awk '{print $1}')
for esp in $BENCH_ALGS; do
    for rep in $(seq "$BENCH_REPEAT"); do
        order=""
        for p in $BENCH_PAIRS; do
            # the plain-veth ceiling does not depend on the cipher: measure it with the first one
            # nor does boringtun's (WireGuard has one cipher)
            case $p in a|g) [ "$esp" != "$FIRST_ALG" ] && continue ;; esac
            order="$order $p"
        done
        # reverse the order on every other repetition so drifts hit all pairings alike
        [ $((rep % 2)) = 0 ] && order=$(echo $order | tr ' ' '\n' | tac | tr '\n' ' ')
        for p in $order; do measure "$rep" "$p" "$esp"; done
    done
done
for n in ${BENCH_TUNNELS:-}; do measure_tunnels "$n"; done

# ---- report --------------------------------------------------------------------------------
. "$REPO/scripts/bench-report.sh"
echo
cat "$BENCH_OUT"
echo
log "results written to $BENCH_OUT (and ${BENCH_OUT%.md}.json, ${BENCH_OUT%.md}.svg)"
if [ $FAILED_RUNS -gt 0 ]; then
    log "$FAILED_RUNS iperf3 run(s) failed (see the table)"
    exit 3
fi
exit 0
