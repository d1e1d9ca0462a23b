#!/usr/bin/env bash
# run.sh REPORT_DIR — runs every GPU test binary of this bundle (bin/*) on this machine and
# writes REPORT_DIR/report.md, REPORT_DIR/report.json and one <binary>.log each.
#
# Made by `cargo xtask gpu-bundle`. Each binary runs with RAGTUNE_REQUIRE_GPU=1, so a machine
# where no GPU is usable fails (the tests print why) instead of skipping. Kernels are compiled
# fresh into REPORT_DIR/kernel-cache, so a stale cache from an older build cannot hide a bug.
# Needs bash and coreutils; the CUDA 13 driver, NVRTC and cuBLAS come from the machine.
# Exits 0 only when every binary passed; 1 when one failed or the bundle holds none; 2 on usage.
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

summary="all ${#bins[@]} test binaries passed"
if [ ${#bins[@]} -eq 0 ]; then
    summary="this bundle holds no GPU test binaries (tests/tests/gpu_*.rs): nothing was checked"
    any_failed=1
elif [ "$any_failed" -ne 0 ]; then
    summary="some test binaries failed"
fi

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
