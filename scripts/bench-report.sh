# Sourced by scripts/bench.sh once every run is done: writes $BENCH_OUT (Markdown), its .json
# (every run, the many-tunnel and busy-tunnel rows, how it was produced) and its .svg chart.
# Reads the variables bench.sh set (RUNS, TUNNELS_TSV, BUSY_TSV, BENCH_*, CMDLINE, ...).

{
    echo "# ipsecgw end-to-end throughput ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- host: $CPU_MODEL, $(nproc) CPUs, kernel $(uname -r), load at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- ipsecgw $GW_REV (binary built $BIN_BUILT), strongSwan $SW_VER (charon + kernel-libipsec, openssl), $IPERF_VER"
    echo "- command: \`$CMDLINE\`"
    echo "- iperf3 TCP, ${BENCH_T} s per run, LAN 10.1.0.1 (left) -> LAN 10.2.0.1 (right) through the tunnel (TUN MTU 1400);"
    echo "  IKE $IKE_PROPOSAL, PSK auth, traffic selectors 0.0.0.0/0; a fresh namespace pair per setup."
    echo "- runs are interleaved: for each cipher and repetition every pairing is set up and measured back to back"
    echo "  (order reversed on every other repetition; BENCH_REPEAT=$BENCH_REPEAT), so machine noise hits all alike."
    echo "  Other jobs may share this machine: see load1 per run."
    echo "- pairings: (a) plain veth, no IPsec; (b) strongSwan libipsec <-> libipsec (ESP in UDP 4500, forced);"
    echo "  (c) ipsecgw <-> ipsecgw, encap=always (UDP 4500); (d) ipsecgw <-> ipsecgw, encap=auto (raw ESP, proto 50);"
    echo "  (e) ipsecgw (left, encrypts) -> strongSwan (right, decrypts); (f) strongSwan (left, encrypts) -> ipsecgw (right, decrypts);"
    echo "  (g) boringtun <-> boringtun (WireGuard, ChaCha20-Poly1305: measured once, shown beside every cipher);"
    echo "  (h), (i) as (c), (d) with the binary IPSECGW_BEFORE ($(basename "${IPSECGW_BEFORE:-none}")): before/after in one run."
    echo "  \"-\" = pairing not part of this run; n/a = not measured."
    echo "- cpu = utime+stime of each daemon process (all threads) during the run, % of ONE core, left/right;"
    echo "  retr = TCP retransmits (sender); rcvbuf = UDP RcvbufErrors in the receiving (right) namespace;"
    echo "  raw drops = drops on raw sockets in the right namespace (raw ESP only); kernel drops = interface rx/tx and"
    echo "  qdisc drops in both namespaces plus softnet backlog drops (host-wide); gw drops = packets ipsecgw itself"
    echo "  counted as dropped (status counters, both sides)."
    echo
    echo "## Summary (mean Mbit/s over repetitions)"
    echo
    echo "| cipher | P | (a) veth | (b) strongSwan | (c) ipsecgw udp | (d) ipsecgw esp | (e) ipsecgw->sswan | (f) sswan->ipsecgw | (g) boringtun | **(c)/(b)** | (d)/(b) | (c)/(g) | (d)/(g) | Mbit/s per core (b) | Mbit/s per core (c) | (h) before udp | (i) before esp | (c)/(h) | (d)/(i) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v algs="$BENCH_ALGS" -v pars="$BENCH_PAR" -v pairs=" $BENCH_PAIRS " '
        $12 == "ok" {
            k = $2 SUBSEP $3 SUBSEP $4; sum[k] += $5; n[k]++
            if ($2 == "a") { ka = $4; asum[ka] += $5; an[ka]++ }
            if ($2 == "g") { kg = $4; gsum[kg] += $5; gn[kg]++ }
            split($7, c, "/"); cs[k] += c[1] + c[2]; cn[k]++
        }
        $12 != "ok" { bad[$2 SUBSEP $3 SUBSEP $4] = 1 }
        function mean(p, e, q,   k) { k = p SUBSEP e SUBSEP q
            if (index(pairs, " " p " ") == 0) return "-"
            if (n[k]) return sprintf("%.0f", sum[k] / n[k]); if (bad[k]) return "FAILED"; return "n/a" }
        function percore(p, e, q,   k) { k = p SUBSEP e SUBSEP q
            if (!n[k] || cs[k] <= 0) return "n/a"; return sprintf("%.0f", (sum[k] / n[k]) / ((cs[k] / cn[k]) / 100)) }
        function ratio(x, y) { if (x ~ /^[0-9.]+$/ && y ~ /^[0-9.]+$/ && y > 0) return sprintf("%.2f", x / y); return "n/a" }
        END {
            na = split(algs, A, " "); np = split(pars, P, " ")
            for (i = 1; i <= na; i++) for (j = 1; j <= np; j++) {
                e = A[i]; q = P[j]
                va = an[q] ? sprintf("%.0f", asum[q] / an[q]) : (index(pairs, " a ") ? "n/a" : "-")
                vg = gn[q] ? sprintf("%.0f", gsum[q] / gn[q]) : (index(pairs, " g ") ? "n/a" : "-")
                vb = mean("b", e, q); vc = mean("c", e, q); vd = mean("d", e, q); ve = mean("e", e, q); vf = mean("f", e, q)
                vh = mean("h", e, q); vi = mean("i", e, q)
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", e, q, va, vb, vc, vd, ve, vf, vg,
                    ratio(vc, vb), ratio(vd, vb), ratio(vc, vg), ratio(vd, vg), percore("b", e, q), percore("c", e, q),
                    vh, vi, ratio(vc, vh), ratio(vd, vi)
            }
        }' "$RUNS"
    echo
    echo "\"Mbit/s per core\" = Mbit/s divided by the two daemons' CPU together (in cores): throughput per unit of CPU."
    echo
    echo "## All runs (in the order they ran)"
    echo
    echo "| rep | pairing | cipher | negotiated ESP | P | Mbit/s | retr | cpu L/R % | rcvbuf | raw drops | kernel drops | gw drops | ESP transport | load1 | status |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' 'BEGIN{ nm["a"]="(a) plain veth"; nm["b"]="(b) strongSwan<->strongSwan"; nm["c"]="(c) ipsecgw<->ipsecgw always";
                      nm["d"]="(d) ipsecgw<->ipsecgw auto"; nm["e"]="(e) ipsecgw->strongSwan"; nm["f"]="(f) strongSwan->ipsecgw"; nm["g"]="(g) boringtun<->boringtun";
                      nm["h"]="(h) ipsecgw-before always"; nm["i"]="(i) ipsecgw-before auto" }
        { cipher = ($2 == "a") ? "-" : ($2 == "g") ? "wireguard" : $3
          printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, nm[$2], cipher, $13, $4, $5, $6, $7, $8, $9, $14, $15, $10, $11, $12 }' "$RUNS"
    if [ -s "$TUNNELS_TSV" ]; then
        echo
        echo "## Many tunnels (two ipsecgw, N connections with distinct IDs, a TUN each)"
        echo
        echo "| tunnels | up | seconds until all up | threads L / R | RSS L / R (MiB) | RSS per extra tunnel L / R (KiB) | load1 |"
        echo "|---|---|---|---|---|---|---|"
        # per extra tunnel: against the first (smallest) row of this run
        awk -F'\t' 'NR == 1 { n0 = $1; l0 = $6; r0 = $7 }
            { per = ($1 > n0) ? sprintf("%.0f / %.0f", ($6 - l0) / ($1 - n0), ($7 - r0) / ($1 - n0)) : "-"
              printf "| %s | %s | %s | %s / %s | %.0f / %.0f | %s | %s |\n", $1, $2, $3, $4, $5, $6/1024, $7/1024, per, $8 }' "$TUNNELS_TSV"
    fi
    if [ -s "$BUSY_TSV" ]; then
        echo
        echo "## Busy tunnels (one iperf3 TCP stream through each of K tunnels at once, ${BENCH_T} s, aes256-sha1)"
        echo
        echo "| tunnels up | K busy | Mbit/s in all | streams that ran | ratio to K = 1 in the same setup | load1 |"
        echo "|---|---|---|---|---|---|"
        awk -F'\t' '$2 == 1 { one[$1] = $3 }
            { r = (one[$1] > 0) ? sprintf("%.2f", $3 / one[$1]) : "n/a"
              printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, r, $5 }' "$BUSY_TSV"
    fi
} >"$BENCH_OUT" || die "cannot write $BENCH_OUT"

# JSON: every run, the many-tunnel rows, and how it was produced
jq -n --rawfile runs "$RUNS" --rawfile tun "$TUNNELS_TSV" --rawfile busy "$BUSY_TSV" --arg cmd "$CMDLINE" --arg host "$CPU_MODEL, $(nproc) CPUs" \
    --arg rev "$GW_REV" --arg sw "$SW_VER" '
    def rows($t): $t | split("\n") | map(select(length > 0) | split("\t"));
    { command: $cmd, host: $host, ipsecgw: $rev, strongswan: $sw,
      runs: [rows($runs)[] | { rep: (.[0]|tonumber), pairing: .[1], cipher: .[2], parallel: (.[3]|tonumber),
              mbps: (.[4]|tonumber), retransmits: .[5], cpu_percent: .[6], rcvbuf_errors: .[7], raw_drops: .[8],
              transport: .[9], load1: .[10], status: .[11], negotiated: .[12], kernel_drops: .[13], gw_drops: .[14] }],
      tunnels: [rows($tun)[] | { tunnels: (.[0]|tonumber), up: (.[1]|tonumber), seconds: (.[2]|tonumber),
              threads: [(.[3]|tonumber), (.[4]|tonumber)], rss_kib: [(.[5]|tonumber), (.[6]|tonumber)], load1: .[7] }],
      busy: [rows($busy)[] | { tunnels: (.[0]|tonumber), busy: (.[1]|tonumber), mbps: (.[2]|tonumber),
              streams_ok: (.[3]|tonumber), load1: .[4] }] }' \
    >"${BENCH_OUT%.md}.json" || die "cannot write ${BENCH_OUT%.md}.json"

# SVG chart: mean Mbit/s per pairing, one group of bars per cipher and -P, ratio to (b) on each bar
awk -F'\t' -v algs="$BENCH_ALGS" -v pars="$BENCH_PAR" -v pairs="$BENCH_PAIRS" -v title="$CMDLINE" \
    -v host="$CPU_MODEL, $(nproc) vCPUs, $(date -u '+%Y-%m-%d')" -f "$REPO/scripts/bench-chart.awk" "$RUNS" \
    >"${BENCH_OUT%.md}.svg" || die "cannot write ${BENCH_OUT%.md}.svg"

