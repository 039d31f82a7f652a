# SVG bar chart for scripts/bench.sh: mean Mbit/s per pairing (runs.tsv: pairing $2, cipher $3,
# -P $4, Mbit/s $5, status $12), one group of bars per cipher and -P, each bar labelled with
# its ratio to (b) strongSwan in the same run. Variables: algs, pars, pairs, title, host.
# boringtun (g) runs with one cipher only (WireGuard): its bar appears in every cipher group.
$12 == "ok" { k = $2 SUBSEP $3 SUBSEP $4; s[k] += $5; n[k]++; if ($2 == "g") { gs[$4] += $5; gn[$4]++ } }
END {
    np = split(pairs, P, " "); na = split(algs, A, " "); nq = split(pars, Q, " ")
    name["b"] = "strongSwan"; name["c"] = "ipsecgw UDP"; name["d"] = "ipsecgw raw ESP"
    name["e"] = "ipsecgw->strongSwan"; name["f"] = "strongSwan->ipsecgw"; name["g"] = "boringtun (WireGuard)"; name["h"] = "before: UDP"; name["i"] = "before: raw ESP"
    col["b"] = "#d62728"; col["c"] = "#1f77b4"; col["d"] = "#2ca02c"; col["e"] = "#9467bd"; col["f"] = "#ff7f0e"; col["g"] = "#7f7f7f"; col["h"] = "#aec7e8"; col["i"] = "#98df8a"
    max = 1; ng = 0; nb = 0
    for (p = 1; p <= np; p++) if (P[p] != "a") B[++nb] = P[p]
    for (j = 1; j <= nq; j++) if (gn[Q[j]]) for (i = 1; i <= na; i++) { k = "g" SUBSEP A[i] SUBSEP Q[j]; s[k] = gs[Q[j]]; n[k] = gn[Q[j]] }
    for (i = 1; i <= na; i++) for (j = 1; j <= nq; j++) {
        ng++; GA[ng] = A[i]; GQ[ng] = Q[j]
        for (p = 1; p <= nb; p++) { k = B[p] SUBSEP A[i] SUBSEP Q[j]; if (n[k] && s[k] / n[k] > max) max = s[k] / n[k] }
    }
    bw = 30; gap = 34; left = 64; top = 56; h = 280
    width = left + ng * (nb * bw + gap) + 20; if (width < 720) width = 720
    if (width < left + nb * 160 + 20) width = left + nb * 160 + 20  # room for the legend
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", width, top + h + 96
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">iperf3 TCP LAN to LAN through the tunnel, Mbit/s (x = ratio to strongSwan, same run)</text>\n", left
    printf "<text x=\"%d\" y=\"36\" fill=\"#555\">%s</text>\n", left, host
    for (t = 0; t <= 4; t++) {
        y = top + h - h * t / 4
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#e5e5e5\"/>", left, width - 10, y, y
        printf "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">%.0f</text>\n", left - 6, y + 4, max * t / 4
    }
    for (g = 1; g <= ng; g++) {
        x0 = left + (g - 1) * (nb * bw + gap) + gap / 2
        kb = "b" SUBSEP GA[g] SUBSEP GQ[g]; base = n[kb] ? s[kb] / n[kb] : 0
        for (p = 1; p <= nb; p++) {
            k = B[p] SUBSEP GA[g] SUBSEP GQ[g]; v = n[k] ? s[k] / n[k] : 0; bh = h * v / max; x = x0 + (p - 1) * bw
            printf "<rect x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%.0f\" fill=\"%s\"><title>%s, %s -P %s: %.0f Mbit/s</title></rect>\n", x, top + h - bh, bw - 4, bh, col[B[p]], name[B[p]], GA[g], GQ[g], v
            if (base > 0 && v > 0) printf "<text x=\"%d\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"10\">%.1fx</text>\n", x + (bw - 4) / 2, top + h - bh - 4, v / base
        }
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s -P %s</text>\n", x0 + nb * bw / 2, top + h + 16, GA[g], GQ[g]
    }
    lx = left; ly = top + h + 36
    for (p = 1; p <= nb; p++) {
        printf "<rect x=\"%d\" y=\"%d\" width=\"11\" height=\"11\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">(%s) %s</text>\n", lx, ly, col[B[p]], lx + 15, ly + 10, B[p], name[B[p]]
        lx += 160
    }
    printf "<text x=\"%d\" y=\"%d\" fill=\"#555\" font-size=\"10\">%s</text>\n", left, ly + 32, title
    printf "</svg>\n"
}
