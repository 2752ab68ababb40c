#!/usr/bin/env bash
# Runs the 12-megapixel edit pipeline in etchr-ops and in Pillow, one after the other on the
# same input, and prints the side-by-side table for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=bench/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import PIL" 2>/dev/null || "$venv/bin/pip" install --quiet "pillow==13.0.0"
cargo bench -p etchr-ops --bench pipeline >/dev/null
"$venv/bin/python" bench/pillow_pipeline.py >/dev/null
"$venv/bin/python" - <<'PY'
import json, pathlib
out = pathlib.Path("bench/out")
r = json.loads((out / "pipeline-rust.json").read_text())
p = json.loads((out / "pipeline-pillow.json").read_text())
rm, pm = r["median_ms"], p["median_ms"]
print(f"| stage (median ms) | etchr-ops | {p['implementation']} |")
print("|---|---:|---:|")
for k in ["decode", "ops", "encode_png", "encode_jpeg", "total"]:
    print(f"| {k} | {rm[k]:.1f} | {pm[k]:.1f} |")
print(f"| PNG at Pillow's default level | | {pm['encode_png_default']:.1f} |")
print()
print(f"ops / (decode + encodes), etchr-ops: {r['ops_over_codec']*100:.1f} % (target <= 20 %)")
print(f"end-to-end speed-up over Pillow (fast PNG): {pm['total']/rm['total']:.2f}x (target >= 3x)")
print(f"end-to-end speed-up over Pillow (default PNG): {p['total_with_default_png_ms']/rm['total']:.2f}x")
PY
