#!/usr/bin/env bash
# Stage 1 on the GPU, an A/B/C of the word-reading cue head with and without its direct path to
# the pre-encoder image tokens (+ conv stem) (models/README.md, "Does the model find the target
# at all?" and "Which part of the cue binds?"): all runs grow from the shipped weights, train
# side by side on the same fresh-every-round data at batch 128, then held-out metrics for each
# (first-pointer top-1 per family is the number to compare) and, for the cue runs, the binding
# probe (does the head prefer objects of the named colour?). Needs devcarry/etchr-cuda.xz built
# from this commit.
set -u
exec > >(tee "$OUT/train-log.txt") 2>&1
mkdir -p /tmp/bin
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$1"; fi; }
unxz devcarry/etchr-cuda.xz > /tmp/bin/etchr-cuda && chmod +x /tmp/bin/etchr-cuda
LIBS=$(for n in libcublas.so.13 libcurand.so.10 libcublasLt.so.13 libnvrtc.so.13; do find /usr /opt -name "$n" 2>/dev/null | head -1; done | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${LIBS}/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
E=/tmp/bin/etchr-cuda
A="--gpu --seed 51 --train-items 3000 --refresh-every 150 --val-items 48 --batch-size 128 --steps 1200 --lr 1e-3 --warmup 60 --checkpoint-every 200 --eval-every 400 --quiet"
date +%T
timeout 420 $E train sft --init-from models/default --out /tmp/plain $A > "$OUT"/plain.log 2>&1 &
timeout 420 $E train sft --init-from models/default --config bench/device/cue-words.json --out /tmp/cue $A > "$OUT"/cue.log 2>&1 &
timeout 420 $E train sft --init-from models/default --config bench/device/cue-direct.json --out /tmp/direct $A > "$OUT"/direct.log 2>&1 &
wait
date +%T
for r in plain cue direct; do
  d=/tmp/$r/final
  [ -d "$d" ] || d=$(ls -d /tmp/$r/ckpt-* 2>/dev/null | sort | tail -1)
  echo "$r: $d"; [ -n "$d" ] || continue
  mkdir -p "$OUT/$r"; cp "$d"/config.json "$d"/model.safetensors "$OUT/$r"/; cp /tmp/$r/metrics.jsonl "$OUT/$r"/ 2>/dev/null
  timeout 90 $E train metrics --model "$d" --seed 2000001 --items 120 > "$OUT/$r/heldout.json" 2>/dev/null &
  [ "$r" = plain ] || timeout 90 $E train probe --model "$d" --seed 2000001 --items 120 > "$OUT/$r/probe.json" 2> "$OUT/$r/probe.txt" &
done
wait
date +%T
ls -la "$OUT" "$OUT"/plain "$OUT"/cue "$OUT"/direct
