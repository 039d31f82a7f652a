#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>/) from real traffic: strongSwan (charon with
# kernel-libipsec) and BIRD 2 in one network namespace, the release ipsecgw binary in another,
# tcpdump on the underlay (IKE, UDP 500/4500) and on ipsecgw's TUN device (BGP and the inner
# packets). The scenario: strongSwan initiates (three IKE suites), BGP comes up, both sides rekey
# the CHILD and the IKE SA, both sides delete. scripts/fuzz-seeds.py then turns the captures
# (decrypted with ipsecgw's key log, IPSECGW_KEYLOG) into fuzz inputs.
#
#   ./scripts/fuzz-seeds.sh            capture and write the seeds into fuzz/corpus/
#   ./scripts/fuzz-seeds.sh --cmin     then minimize each corpus with `cargo +nightly fuzz cmin`
#   FUZZ_SEEDS_OUT=/tmp/seeds ./scripts/fuzz-seeds.sh   write them elsewhere (a dry run)
#
# Needs root, tcpdump, strongswan (charon, swanctl), bird2, python3 with `cryptography`
# (Debian: python3-cryptography). Everything it starts is stopped by PID, its namespaces are
# deleted on exit, also on failure. IPSECGW_SEEDS_KEEP=1 keeps the captures and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CMIN=0
[ "${1:-}" = --cmin ] && CMIN=1

for t in tcpdump swanctl /usr/lib/ipsec/charon bird birdc ip python3; do
    command -v "$t" >/dev/null || { echo "fuzz-seeds: $t is missing" >&2; exit 1; }
done
python3 -c 'import cryptography' 2>/dev/null ||
    { echo "fuzz-seeds: python3 needs the cryptography module (apt-get install python3-cryptography)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "fuzz-seeds: run as root (network namespaces)" >&2; exit 1; }

cargo build --release --bin ipsecgw -q
BIN=$ROOT/target/release/ipsecgw
ID=$$
L=fsl$ID
R=fsr$ID
DIR=$(mktemp -d /tmp/ipsecgw-fuzz-seeds.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$L" 2>/dev/null || true
    ip netns del "$R" 2>/dev/null || true
    if [ "${IPSECGW_SEEDS_KEEP:-}" = 1 ]; then echo "fuzz-seeds: kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# Starts a command in a namespace in the background, logging to $DIR/<name>.log.
spawn() {
    local ns=$1 name=$2
    shift 2
    ip netns exec "$ns" "$@" >"$DIR/$name.log" 2>&1 &
    PIDS+=($!)
}

wait_for() { # seconds, command...
    local n=$(($1 * 5))
    shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "fuzz-seeds: timed out waiting for: $*" >&2
    return 1
}

# ---- namespaces: underlay 192.0.2.1 (ipsecgw) <-> 192.0.2.2 (strongSwan + BIRD) ----------
ip netns add "$L"
ip netns add "$R"
ip link add ul-l netns "$L" type veth peer name ul-r netns "$R"
ip -n "$L" addr add 192.0.2.1/24 dev ul-l
ip -n "$R" addr add 192.0.2.2/24 dev ul-r
for ns in "$L" "$R"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link add lan0 type ifb
    ip -n "$ns" link set lan0 up
done
ip -n "$L" link set ul-l up
ip -n "$R" link set ul-r up
ip -n "$L" addr add 10.1.0.1/24 dev lan0
ip -n "$R" addr add 10.2.0.1/24 dev lan0
ip -n "$R" addr add 10.10.30.254/32 dev lo
wait_for 5 ip netns exec "$L" ping -c1 -W1 192.0.2.2

spawn "$L" tcpdump-ike tcpdump -U -n -i ul-l -w "$DIR/ike.pcap" udp port 500 or udp port 4500
sleep 1

# ---- strongSwan: one connection per IKE suite, all waiting for commands ---------------------
mkdir -p "$DIR/varrun"
cat >"$DIR/strongswan.conf" <<EOF
charon {
    load_modular = no
    load = random nonce openssl gmp aes sha1 sha2 hmac kdf kernel-libipsec kernel-netlink socket-default vici updown
    install_routes = no
    retransmit_tries = 3
    retransmit_timeout = 2.0
    plugins {
        kernel-netlink { fwmark = 0x2200 }
        vici { socket = unix://$DIR/charon.vici }
    }
    filelog {
        f {
            path = $DIR/charon.file
            default = 1
            ike = 2
            flush_line = yes
        }
    }
    syslog { daemon { default = -1 } }
}
EOF
conn() { # name ike-proposal esp-proposal
    cat <<EOF
    $1 {
        version = 2
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = $2
        mobike = no
        dpd_delay = 5s
        local { auth = psk
                id = 192.0.2.2 }
        remote { auth = psk
                 id = 192.0.2.1 }
        children { $1 { local_ts = 0.0.0.0/0
                        remote_ts = 0.0.0.0/0
                        esp_proposals = $3
                        start_action = none
                        dpd_action = clear } }
    }
EOF
}
{
    echo "connections {"
    conn gw aes256-sha1-modp1024 aes256-sha1
    conn gcm aes256gcm16-prfsha256-modp2048 aes128gcm16
    conn tdes 3des-sha1-modp1024 3des-sha1
    echo "}"
    echo 'secrets { ike-1 { id-a = 192.0.2.2
                           id-b = 192.0.2.1
                           secret = "lab-psk-0123456789" } }'
} >"$DIR/swanctl.conf"
spawn "$R" charon sh -c "mount --bind $DIR/varrun /run && exec env STRONGSWAN_CONF=$DIR/strongswan.conf /usr/lib/ipsec/charon"
wait_for 15 test -S "$DIR/charon.vici"
swan() { STRONGSWAN_CONF=$DIR/strongswan.conf swanctl "$@" --uri "unix://$DIR/charon.vici"; }
swan --load-all --file "$DIR/swanctl.conf" >/dev/null 2>&1
wait_for 5 ip -n "$R" route replace 10.2.30.125/32 dev ipsec0 src 10.10.30.254

cat >"$DIR/bird.conf" <<EOF
log "$DIR/bird.file" all;
router id 10.10.30.254;
protocol device { scan time 2; }
protocol static tunnel_peer { ipv4; route 10.2.30.125/32 via "ipsec0"; }
protocol static lan { ipv4; route 10.2.0.0/24 via "lan0"; route 10.2.1.0/24 via "lan0"; route 10.2.128.0/17 via "lan0"; }
protocol kernel {
    scan time 2;
    ipv4 { import none; export filter { if source = RTS_BGP then { krt_prefsrc = 10.2.0.1; accept; } reject; }; };
}
protocol bgp ipsecgw {
    local 10.10.30.254 as 65515;
    neighbor 10.2.30.125 as 65021;
    multihop 255;
    connect delay time 1; connect retry time 2; error wait time 1, 5;
    hold time 30; keepalive time 10;
    ipv4 { import all; export where proto = "lan"; next hop self; gateway recursive; };
}
EOF
spawn "$R" bird bird -f -c "$DIR/bird.conf" -s "$DIR/bird.ctl" -P "$DIR/bird.pid"
wait_for 10 test -S "$DIR/bird.ctl"

# ---- ipsecgw: the lab connection with its TUN device and the BGP session -----------------
cat >"$DIR/ipsecgw.toml" <<EOF
[global]
control_socket = "$DIR/ipsecgw.sock"
log_level = "debug"
retransmit_timeout = "1s"
retransmit_tries = 3

[[connection]]
name = "gw"
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
local_id = "192.0.2.1"
remote_id = "192.0.2.2"
psk = "lab-psk-0123456789"
ike_proposals = ["aes256-sha1-modp1024", "aes256gcm16-prfsha256-modp2048", "3des-sha1-modp1024"]
start_action = "none"
dpd_delay = "10s"

[[connection.children]]
name = "net"
local_ts = ["0.0.0.0/0"]
remote_ts = ["0.0.0.0/0"]
esp_proposals = ["aes256-sha1", "aes128gcm16", "3des-sha1"]

[connection.tunnel]
interface = "ipsec30"
address = "10.2.30.125/32"
mtu = 1400
routes = ["10.10.30.254/32"]

[connection.bgp]
local_as = 65021
peer_as = 65515
peer_address = "10.10.30.254"
local_address = "10.2.30.125"
multihop = 5
hold_time = "30s"
connect_retry = "1s"
networks = ["10.1.0.0/24", "192.168.99.0/24"]
export = ["10.1.0.0/24"]
import_local_pref = 200
EOF
spawn "$L" ipsecgw env IPSECGW_KEYLOG="$DIR/keys.log" RUST_LOG=ipsecgw=debug "$BIN" run --config "$DIR/ipsecgw.toml"
wait_for 10 test -S "$DIR/ipsecgw.sock"
gw() { "$BIN" --socket "$DIR/ipsecgw.sock" "$@"; }

# ---- the scenario ------------------------------------------------------------------------
swan --initiate --ike gw --child gw --timeout 20 >/dev/null
wait_for 10 ip -n "$L" link show ipsec30
spawn "$L" tcpdump-tun tcpdump -U -n -i ipsec30 -w "$DIR/tun.pcap"
wait_for 40 sh -c "birdc -s $DIR/bird.ctl show protocols ipsecgw | grep -q Established"
wait_for 15 ip netns exec "$L" ping -c1 -W1 -I 10.1.0.1 10.2.0.1 || true
ip netns exec "$L" ping -c3 -i0.2 -s 1200 -I 10.1.0.1 10.2.0.1 >/dev/null || true
# The control socket, as a client would talk to it; each answer is kept as a seed.
for req in '{"version":1,"command":"status"}' '{"version":1,"command":"bgp"}' \
           '{"version":1,"command":"bgp","name":"gw"}' '{"version":1,"command":"rekey","name":"nope"}'; do
    python3 - "$DIR/ipsecgw.sock" "$req" >>"$DIR/control.responses" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode().strip() + "\n")
EOF
done
swan --rekey --child gw >/dev/null; sleep 2
swan --rekey --ike gw >/dev/null; sleep 3
gw rekey gw >/dev/null; sleep 2
gw rekey gw --ike >/dev/null; sleep 3
# BIRD withdraws and re-announces (UPDATEs with withdrawn routes).
birdc -s "$DIR/bird.ctl" disable lan >/dev/null; sleep 2
birdc -s "$DIR/bird.ctl" enable lan >/dev/null; sleep 2
swan --terminate --ike gw --timeout 10 >/dev/null; sleep 2
gw initiate gw >/dev/null
wait_for 15 sh -c "$BIN --socket $DIR/ipsecgw.sock status --json | grep -q '\"installed\"'"
gw terminate gw >/dev/null; sleep 2
for c in gcm tdes; do
    swan --initiate --ike $c --child $c --timeout 20 >/dev/null
    sleep 2
    swan --terminate --ike $c --timeout 10 >/dev/null
    sleep 1
done
sleep 1

# ---- turn the captures into fuzz inputs ---------------------------------------------------
OUT=${FUZZ_SEEDS_OUT:-fuzz/corpus}
python3 scripts/fuzz-seeds.py --dir "$DIR" --out "$OUT" --configs deploy/configs "$DIR/ipsecgw.toml"
if [ $CMIN = 1 ]; then
    OUT=$(realpath "$OUT")
    (cd fuzz && for t in $(ls "$OUT"); do cargo +nightly fuzz cmin "$t" "$OUT/$t" -- -rss_limit_mb=4096; done)
fi
echo "fuzz-seeds: done"; for t in "$OUT"/*; do echo "  $t: $(ls "$t" | wc -l) files"; done
