#!/usr/bin/env bash
# Runs the etchr-ops cargo-fuzz targets (fuzz/) for a bounded time each and summarises them.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 120 s, all four targets)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Each target
# starts from the committed seeds in fuzz/seeds/<target>/ plus whatever an earlier run left in
# fuzz/corpus/<target>/ (ignored by git); crashes, timeouts and OOMs land in
# fuzz/artifacts/<target>/. Logs go to bench/out/fuzz/<target>.log. One job per target, niced,
# run one after another. Exits 1 if any target found something.
set -euo pipefail

cd "$(dirname "$0")/.."
SECS="${1:-120}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(program_json program_text coords decode)
fi
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
LOGS=bench/out/fuzz
mkdir -p "$LOGS"

echo "toolchain: $(cargo +"$TOOLCHAIN" --version)  $(cargo fuzz --version)"
echo "building the fuzz targets (release, ASan, debug assertions) ..."
(cd fuzz && nice -n 10 cargo +"$TOOLCHAIN" fuzz build 2>&1 | tail -n 2)

found=0
summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    seeds_dir="fuzz/seeds/$t"
    [ -d "$seeds_dir" ] || seeds_dir=""
    echo "fuzzing $t for ${SECS}s ..."
    start=$(date +%s)
    set +e
    (cd fuzz && nice -n 10 cargo +"$TOOLCHAIN" fuzz run "$t" "corpus/$t" ${seeds_dir:+"seeds/$t"} -- \
        -max_total_time="$SECS" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"../$LOGS/$t.log" 2>&1)
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    log="$LOGS/$t.log"
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1 || true)
    [ -n "$execs" ] || execs=$(echo "$last" | grep -o '^#[0-9]*' | tr -d '#')
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
    corp=$(find "fuzz/corpus/$t" -type f | wc -l)
    after=$(find "fuzz/artifacts/$t" -type f | wc -l)
    new=$((after - before))
    if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
        found=1
        art=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //' || true)
        status="FOUND (rc $rc) ${art:-see $log}"
    else
        status="clean"
    fi
    [ -n "$rate" ] || rate=$(echo "$last" | grep -o 'exec/s: [0-9]*' | grep -o '[0-9]*' || true)
    line=$(printf '%-13s %4ss  execs %-9s exec/s %-6s cov %-5s ft %-6s corpus %-5s rss %4sMB  %s' \
        "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corp" "${rss:-?}" "$status")
    echo "$line"
    summary+=("$line")
done

echo
echo "== fuzz summary (limit ${SECS}s per target, wall time incl. start-up shown; logs in $LOGS/) =="
printf '%s\n' "${summary[@]}"
exit "$found"
