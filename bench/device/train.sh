#!/usr/bin/env bash
# Stage 1 continuation on the GPU: shipped weights, a fresh larger split, batch 128.
set -u
exec > >(tee "$OUT/train-log.txt") 2>&1
mkdir -p /tmp/bin
if command -v xz >/dev/null; then xz -dc devcarry/etchr-cuda.xz > /tmp/bin/etchr-cuda; else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' devcarry/etchr-cuda.xz > /tmp/bin/etchr-cuda; fi
chmod +x /tmp/bin/etchr-cuda
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/local/nvidia/lib64:/usr/local/nvidia/lib
date +%T
timeout 400 /tmp/bin/etchr-cuda train sft --gpu --out /tmp/gpu1 --init-from models/default \
  --seed 21 --train-items 5000 --val-items 64 --views-per-item 1 --batch-size 128 --steps 1800 \
  --lr 5e-4 --warmup 100 --checkpoint-every 300 --eval-every 300 --quiet
date +%T
ls -R /tmp/gpu1 | head -30
mkdir -p "$OUT"/best "$OUT"/final
cp /tmp/gpu1/metrics.jsonl "$OUT"/ 2>/dev/null
cp /tmp/gpu1/best/* "$OUT"/best/ 2>/dev/null
cp /tmp/gpu1/final/* "$OUT"/final/ 2>/dev/null || { c=$(ls -d /tmp/gpu1/ckpt-* 2>/dev/null | sort -t- -k2 -n | tail -1); [ -n "$c" ] && cp $c/config.json $c/model.safetensors "$OUT"/final/; }
ls -la "$OUT" "$OUT"/best "$OUT"/final
