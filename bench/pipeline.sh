#!/usr/bin/env bash
# Runs the 12-megapixel edit pipeline in etchr-ops (default build, then with the `turbojpeg`
# feature) and in Pillow, one after the other on the same input, and prints the side-by-side
# table for bench/RESULTS.md. Building the `turbojpeg` feature needs cmake and nasm.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=bench/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import PIL" 2>/dev/null || "$venv/bin/pip" install --quiet "pillow==13.0.0"
cargo bench -p etchr-ops --bench pipeline >/dev/null
cargo bench -p etchr-ops --features turbojpeg --bench pipeline >/dev/null
"$venv/bin/python" bench/pillow_pipeline.py >/dev/null
"$venv/bin/python" - <<'PY'
import json, pathlib
out = pathlib.Path("bench/out")
r = json.loads((out / "pipeline-rust.json").read_text())
p = json.loads((out / "pipeline-pillow.json").read_text())
t = json.loads((out / "pipeline-rust-turbojpeg.json").read_text())
rm, tm, pm = r["median_ms"], t["median_ms"], p["median_ms"]
print(f"| stage (median ms) | etchr-ops | etchr-ops + libjpeg-turbo | {p['implementation']} |")
print("|---|---:|---:|---:|")
for k in ["decode", "ops", "encode_png", "encode_jpeg", "total"]:
    print(f"| {k} | {rm[k]:.1f} | {tm[k]:.1f} | {pm[k]:.1f} |")
print(f"| PNG at Pillow's default level | | | {pm['encode_png_default']:.1f} |")
print()
for name, x in [("etchr-ops", r), ("etchr-ops + libjpeg-turbo", t)]:
    xm = x["median_ms"]
    print(f"{name}: ops / (decode + encodes) {x['ops_over_codec']*100:.1f} % (target <= 20 %); "
          f"speed-up over Pillow {pm['total']/xm['total']:.2f}x fast PNG (target >= 3x), "
          f"{p['total_with_default_png_ms']/xm['total']:.2f}x default PNG")
PY
