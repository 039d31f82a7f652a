#!/usr/bin/env bash
# The whole test suite: unit, deterministic and real-world tests (strongSwan, BIRD and
# ipsecgw in network namespaces). Installs the interop peers with apt when they are
# missing, so it runs on a fresh Debian 12 machine. Needs root (namespaces, TUN devices).
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh ike        only tests whose name matches "ike" (passed to cargo test)
#
# IPSECGW_SKIP_NETNS=1 explicitly skips the namespace tests (they fail loudly otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(strongswan-charon strongswan-swanctl libcharon-extra-plugins
      libstrongswan-extra-plugins libstrongswan-standard-plugins
      bird2 iperf3 tcpdump iproute2 iputils-ping procps nftables
      libcap2-bin util-linux bsdutils)

if [ "$(id -u)" != 0 ] && [ "${IPSECGW_SKIP_NETNS:-}" != 1 ]; then
    echo "test.sh: run as root (network namespaces), or set IPSECGW_SKIP_NETNS=1" >&2
    exit 1
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The distribution's charon must not hold ports 500/4500 of the host (tests use their own).
systemctl stop strongswan-starter strongswan 2>/dev/null || true

# Hygiene first: formatting and lints are part of the suite.
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo build --release --bins
# The micro-benchmarks in criterion's test mode: every case runs once (seconds, not minutes).
cargo test --release --bench esp --bench crypto
exec cargo test --release --no-fail-fast -- --test-threads=2 "$@"
