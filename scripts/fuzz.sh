#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ on nightly (libFuzzer, AddressSanitizer, debug
# assertions and overflow checks on), each for SECONDS, and prints a table of exec counts and
# crashes that can be pasted into a note.
#
#   ./scripts/fuzz.sh                     every target, 60 s each
#   ./scripts/fuzz.sh all 600             every target, 10 min each
#   ./scripts/fuzz.sh ike_responder 120   one target
#   FUZZ_MERGE=1 ./scripts/fuzz.sh ...    afterwards merge inputs that add coverage into
#                                         fuzz/corpus/<target>/ (keep it small: review the diff)
#
# Runs under `nice -n 19` (FUZZ_NICE to change), one process per target (libFuzzer fork mode,
# so a crash does not end the run). New inputs go to fuzz/corpus-run/<target>/ (not committed).
# Crashes (and leaks, timeouts, out-of-memory) are copied to fuzz/regressions/<target>/ (the 5
# smallest inputs of a run; all of them stay in fuzz/artifacts/<target>/), where
# the stable test tests/fuzz_corpus.rs replays it in every `cargo test`: fix it, or move the
# reproducer out of that folder and file it. Exit status 1 when anything was found.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
WHAT=${1:-all}
SECS=${2:-60}
NICE=${FUZZ_NICE:-19}

command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: needs cargo-fuzz (cargo install cargo-fuzz)" >&2; exit 2; }
rustup run nightly rustc --version >/dev/null 2>&1 || { echo "fuzz.sh: needs a nightly toolchain" >&2; exit 2; }

ALL=$(sed -n 's/^name = "\([a-z_0-9]*\)"$/\1/p' Cargo.toml | grep -v '^ipsecgw-fuzz$')
if [ "$WHAT" = all ]; then TARGETS=$ALL; else
    echo "$ALL" | grep -qx "$WHAT" || { echo "fuzz.sh: no target $WHAT (targets: $(echo $ALL))" >&2; exit 2; }
    TARGETS=$WHAT
fi

# The engine targets spend most of their time in the DH exponentiation of the handshake the
# harness replays first; compare tracing and ASan in crypto-bigint's constant-time loops made
# that ~90 ms per input (27 execs/s). They get their own build without both (the fuzzed code
# has no `unsafe`): ~200 execs/s, and ~1000 with the 64-bit exponents of `--cfg fuzzing`
# (src/crypto/dh.rs).
opts() {
    case $1 in
        ike_responder | ike_initiator) echo "-s none --no-trace-compares --target-dir target/engine" ;;
        *) echo "" ;;
    esac
}

mkdir -p logs
ROWS=()
FOUND=0
for t in $TARGETS; do
    mkdir -p "corpus-run/$t" "artifacts/$t" "regressions/$t"
    stamp=$(mktemp)
    log=logs/$t.log
    echo "fuzz.sh: $t for ${SECS}s (log: fuzz/$log)"
    # corpus-run/ first: libFuzzer writes new inputs to the first folder only.
    # shellcheck disable=SC2046 # opts are words
    nice -n "$NICE" cargo +nightly fuzz build $(opts "$t") "$t" 2>&1 | grep -Ev '^ *(Compiling|Finished)' || true
    nice -n "$NICE" cargo +nightly fuzz run $(opts "$t") "$t" "corpus-run/$t" "corpus/$t" -- \
        -max_total_time="$SECS" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
        >"$log" 2>&1 || true
    # Fork mode prints "#<execs>: cov: .. ft: .. corp: .. exec/s: .. oom/timeout/crash: a/b/c";
    # take the last such line.
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n1)
    execs=$(echo "$last" | sed -n 's/^#\([0-9]*\):.*/\1/p')
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    took=$(echo "$last" | sed -n 's/.* time: \([0-9]*\)s.*/\1/p')
    rate=$(( ${execs:-0} / (${took:-0} > 0 ? ${took:-1} : 1) ))
    # Only what this run found (older artifacts may be known, fixed or filed already), and of
    # that the 5 smallest: one bug tends to leave many inputs; the rest stay in artifacts/.
    new=0
    for a in $(find "artifacts/$t" -type f -newer "$stamp" -printf '%s %p\n' | sort -n | head -n5 | cut -d' ' -f2); do
        b=$(basename "$a")
        if [ ! -e "regressions/$t/$b" ]; then cp "$a" "regressions/$t/$b"; new=$((new + 1)); fi
    done
    rm -f "$stamp"
    # oom + timeout + crash as libFuzzer counted them (the same crash may be hit many times).
    found=$(echo "$last" | sed -n 's/.*oom\/timeout\/crash: \([0-9]*\)\/\([0-9]*\)\/\([0-9]*\).*/\1+\2+\3/p')
    found=$(( ${found:-0} ))
    if [ $((found + new)) -gt 0 ]; then FOUND=1; fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        # shellcheck disable=SC2046
        nice -n "$NICE" cargo +nightly fuzz run $(opts "$t") "$t" "corpus/$t" "corpus-run/$t" -- -merge=1 \
            >>"$log" 2>&1 || true
    fi
    ROWS+=("| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | $(ls "corpus/$t" | wc -l) | $found |")
    if [ -z "$execs" ]; then echo "fuzz.sh: $t printed no exec count; see fuzz/$log" >&2; fi
    if [ "$new" -gt 0 ]; then echo "fuzz.sh: $t: $new new reproducer(s) in fuzz/regressions/$t/"; fi
done

echo
echo "fuzz.sh: ${SECS}s per target, $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "| target | execs | exec/s | cov | corpus files | crashes |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
exit $FOUND
