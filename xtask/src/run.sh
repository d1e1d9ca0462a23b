#!/usr/bin/env bash
# run.sh REPORT_DIR — runs every GPU test binary of this bundle (bin/*) on this machine and
# writes REPORT_DIR/report.md, REPORT_DIR/report.json and one <binary>.log each.
#
# Made by `cargo xtask gpu-bundle`. Each binary runs with RAGTUNE_REQUIRE_GPU=1, so a machine
# where no GPU is usable fails (the tests print why) instead of skipping. Kernels are compiled
# fresh into REPORT_DIR/kernel-cache, so a stale cache from an older build cannot hide a bug.
# Needs bash and coreutils; the CUDA 13 driver, NVRTC and cuBLAS come from the machine.
# Benchmarks append their rows (cargo xtask bench's JSON row format, one per line) to
# REPORT_DIR/bench-rows.jsonl. When compute-sanitizer is on PATH (or in /usr/local/cuda/bin), the
# kernel test binaries (every gpu_* but the benchmarks, gpu_*bench*) run again under --tool memcheck and
# --tool racecheck; its absence is stated in the report, not an error.
# The sanitizer pass gets RAGTUNE_SANITIZER_BUDGET_S seconds in all (default 240): a GPU is lent
# for minutes, and racecheck slows kernels by orders of magnitude. A run cut at the budget, or not
# started because it was spent, is reported as such — what it did not reach was not checked.
# Exits 0 only when every binary passed (and sanitized clean); 1 when one failed or the bundle
# holds none; 2 on usage.
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 REPORT_DIR" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1" || { echo "cannot create report folder $1" >&2; exit 2; }
report_dir="$(cd "$1" && pwd)"

json_escape() {
    local s
    s="$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\t'/\\t}"
    s="${s//$'\r'/}"
    s="${s//$'\n'/\\n}"
    printf '%s' "$s"
}

if command -v nvidia-smi >/dev/null 2>&1; then
    machine="$(nvidia-smi -L 2>&1)"
else
    machine="nvidia-smi not found (no NVIDIA driver installed?)"
fi
host="$(uname -n) $(uname -m)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $host"
echo "$machine"

shopt -s nullglob
bins=("$here"/bin/*)
export RAGTUNE_REQUIRE_GPU=1
# Fresh device allocations start as NaN, so an output element a kernel never writes fails its check.
export RAGTUNE_POISON_ALLOCS=1
export RAGTUNE_CACHE_DIR="$report_dir/kernel-cache"
export RAGTUNE_BENCH_ROWS="$report_dir/bench-rows.jsonl"
rm -f "$RAGTUNE_BENCH_ROWS"

names=() statuses=() codes=() passed=() failed=() ignored=() durations=() reasons=()
any_failed=0
for bin in "${bins[@]}"; do
    name="$(basename "$bin")"
    log="$report_dir/$name.log"
    echo "==> $name"
    t0="$(date +%s%N)"
    (cd "$here" && "$bin" --test-threads=1) >"$log" 2>&1
    code=$?
    t1="$(date +%s%N)"
    duration="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
    # libtest ends with "test result: ok. 3 passed; 0 failed; 1 ignored; ..." (one per harness).
    read -r p f i < <(grep -E '^test result:' "$log" | awk '
        { for (k = 1; k < NF; k++) {
              if ($(k+1) ~ /^passed/) p += $k; if ($(k+1) ~ /^failed/) f += $k; if ($(k+1) ~ /^ignored/) i += $k } }
        END { printf "%d %d %d\n", p, f, i }')
    reason="$(grep -m1 -iE 'no GPU (is )?usable' "$log" || true)"
    if [ "$code" -eq 0 ]; then status=pass; else status=fail; any_failed=1; fi
    echo "<== $name: $status (exit $code, $p passed, $f failed, $i ignored, ${duration} s)${reason:+ — $reason}"
    names+=("$name") statuses+=("$status") codes+=("$code") passed+=("$p") failed+=("$f")
    ignored+=("$i") durations+=("$duration") reasons+=("$reason")
done

# compute-sanitizer over the kernel tests (not the benchmarks: timings under a sanitizer mean
# nothing, and an 8k attention under racecheck takes hours).
sanitizer="$(command -v compute-sanitizer || true)"
if [ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    sanitizer=/usr/local/cuda/bin/compute-sanitizer
fi
san_rows=()
san_failed=0
san_budget="${RAGTUNE_SANITIZER_BUDGET_S:-240}"
san_cut=0
if [ -n "$sanitizer" ]; then
    san_end=$(( $(date +%s) + san_budget ))
    for bin in "${bins[@]}"; do
        name="$(basename "$bin")"
        case "$name" in *bench*) continue ;; esac
        for tool in memcheck racecheck; do
            log="$report_dir/$name.$tool.log"
            left=$(( san_end - $(date +%s) ))
            if [ "$left" -le 0 ]; then
                echo "<== $tool $name: not run (the ${san_budget} s sanitizer budget is spent)"
                san_rows+=("$name|$tool|not run (budget spent)|null|-")
                san_cut=1
                continue
            fi
            echo "==> compute-sanitizer --tool $tool $name (at most $left s)"
            (cd "$here" && timeout --signal=TERM --kill-after=10 "$left" "$sanitizer" --tool "$tool" \
                --error-exitcode 86 --print-limit 50 "$bin" --test-threads=1) >"$log" 2>&1
            code=$?
            errors="$(grep -m1 -oE 'ERROR SUMMARY: [0-9]+ error' "$log" | grep -oE '[0-9]+' || echo '?')"
            if [ "$code" -eq 0 ]; then
                status=clean
            elif [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
                # Cut at the budget: nothing wrong was seen in what ran, but not everything ran.
                status="cut at the budget"
                san_cut=1
            else
                status=fail; any_failed=1; san_failed=1
            fi
            echo "<== $tool $name: $status (exit $code, errors: $errors)"
            san_rows+=("$name|$tool|$status|$code|$errors")
        done
    done
    san_note="compute-sanitizer: $sanitizer (budget ${san_budget} s)"
    if [ "$san_cut" -ne 0 ]; then
        san_note="$san_note — the budget ran out: the rows marked cut or not run were NOT fully checked"
    fi
else
    san_note="compute-sanitizer not found (not on PATH, not in /usr/local/cuda/bin): memcheck and racecheck were NOT run"
    echo "$san_note"
fi
bench_rows=0
if [ -f "$RAGTUNE_BENCH_ROWS" ]; then bench_rows="$(grep -c . "$RAGTUNE_BENCH_ROWS")"; fi

summary="all ${#bins[@]} test binaries passed"
if [ ${#bins[@]} -eq 0 ]; then
    summary="this bundle holds no GPU test binaries (tests/tests/gpu_*.rs, bench/tests/gpu_*.rs): nothing was checked"
    any_failed=1
elif [ "$any_failed" -ne 0 ]; then
    summary="some test binaries failed"
    [ "$san_failed" -ne 0 ] && summary="$summary or compute-sanitizer reported errors"
fi
[ "$san_cut" -ne 0 ] && summary="$summary; compute-sanitizer did not finish within its budget"

{
    echo "# ragtune GPU check"
    echo
    echo "- started: $started"
    echo "- host: $host"
    echo "- GPUs:"
    echo '```'
    echo "$machine"
    echo '```'
    echo "- result: **$summary**"
    echo
    echo "| binary | result | exit | passed | failed | ignored | seconds | note |"
    echo "|---|---|---|---|---|---|---|---|"
    for k in "${!names[@]}"; do
        echo "| ${names[$k]} | ${statuses[$k]} | ${codes[$k]} | ${passed[$k]} | ${failed[$k]} | ${ignored[$k]} | ${durations[$k]} | ${reasons[$k]//|/\\|} |"
    done
    echo
    echo "## compute-sanitizer"
    echo
    echo "$san_note"
    if [ ${#san_rows[@]} -gt 0 ]; then
        echo
        echo "| binary | tool | result | exit | errors |"
        echo "|---|---|---|---|---|"
        for r in "${san_rows[@]}"; do echo "| ${r//|/ | } |"; done
    fi
    echo
    echo "## Benchmark rows"
    echo
    echo "$bench_rows rows in bench-rows.jsonl (cargo xtask bench's row format)."
    for k in "${!names[@]}"; do
        if [ "${statuses[$k]}" = fail ]; then
            echo
            echo "## ${names[$k]} (last 40 lines of ${names[$k]}.log)"
            echo '```'
            tail -n 40 "$report_dir/${names[$k]}.log"
            echo '```'
        fi
    done
} >"$report_dir/report.md"

{
    printf '{\n  "started": "%s",\n  "host": "%s",\n  "gpus": "%s",\n' \
        "$(json_escape "$started")" "$(json_escape "$host")" "$(json_escape "$machine")"
    printf '  "sanitizer": "%s",\n  "sanitized": [' "$(json_escape "$san_note")"
    sep=""
    for r in "${san_rows[@]}"; do
        IFS='|' read -r sn st ss sc se <<<"$r"
        printf '%s\n    {"name": "%s", "tool": "%s", "result": "%s", "exit_code": %s, "errors": "%s"}' \
            "$sep" "$(json_escape "$sn")" "$st" "$ss" "$sc" "$se"
        sep=","
    done
    printf '\n  ],\n  "bench_rows": %s,\n' "$bench_rows"
    printf '  "passed": %s,\n  "summary": "%s",\n  "binaries": [' \
        "$([ "$any_failed" -eq 0 ] && echo true || echo false)" "$(json_escape "$summary")"
    sep=""
    for k in "${!names[@]}"; do
        printf '%s\n    {"name": "%s", "result": "%s", "exit_code": %s, "passed": %s, "failed": %s, "ignored": %s, "duration_s": %s, "note": "%s"}' \
            "$sep" "$(json_escape "${names[$k]}")" "${statuses[$k]}" "${codes[$k]}" "${passed[$k]}" \
            "${failed[$k]}" "${ignored[$k]}" "${durations[$k]}" "$(json_escape "${reasons[$k]}")"
        sep=","
    done
    printf '\n  ]\n}\n'
} >"$report_dir/report.json"

echo "$summary"
echo "report: $report_dir/report.md, $report_dir/report.json"
exit "$any_failed"
