#!/usr/bin/env bash
# Builds what `bash bench/device/run.sh http` needs (issues 2 and 3's 16-vCPU numbers) and packs
# it into devcarry/: the release `etchr` (as the Docker image builds it) and the `http_edit` and
# `proxy_overhead` bench executables, stripped and xz-compressed (the device tool carries at most
# 64 MiB). About 3 minutes with a warm target directory. Then, through the device tool:
#   run: bash bench/device/run.sh http   (carry: devcarry; timeout_s: 480)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p devcarry
# The benches first: building them rebuilds target/release/etchr without turbojpeg.
exe() {
  cargo bench --locked --bench "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1" | tail -1
}
pack() { strip -o "devcarry/$2" "$1" && xz -f -6 "devcarry/$2"; }
pack "$(exe http_edit)" http_edit
pack "$(exe proxy_overhead)" proxy_overhead
cargo build --release --locked --bin etchr --features turbojpeg
pack target/release/etchr etchr-cpu
ls -la devcarry
du -ch devcarry/*.xz | tail -1
