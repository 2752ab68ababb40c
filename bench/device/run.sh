#!/usr/bin/env bash
# One device session: CUDA checks of the editing model, then the CPU HTTP benches on 16 cores.
set -u
exec > >(tee "$OUT/log.txt") 2>&1
R=$PWD
step() { echo; echo "=== $* ($(date +%T))"; }
step machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2
mkdir -p /tmp/bin /work/main/target/release /work/main/bench/out /work/main/crates/etchr-model /work/main/crates/etchr-ops
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$1"; fi; }
for f in devcarry/*.xz; do b=/tmp/bin/$(basename "$f" .xz); unxz "$f" > "$b"; chmod +x "$b"; done
ls -la /tmp/bin
cp /tmp/bin/etchr-cpu /work/main/target/release/etchr
LIBS=$(for n in libcublas.so.13 libcurand.so.10 libcublasLt.so.13 libnvrtc.so.13; do find /usr /opt -name "$n" 2>/dev/null | head -1; done | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd /tmp/bin/etchr-cuda | grep -E "not found|cublas|curand|libcuda"
Q="What is the reading on pump 7's gauge?"
# `run.sh http` runs only the two HTTP benches (about 4 minutes), for a lease that must settle
# issues 2 and 3's CPU numbers and nothing else; `run.sh` runs everything.
if [ "${1:-all}" != http ]; then

step plan on CUDA vs CPU, same weights and input
timeout 40 /tmp/bin/etchr-cuda edit --image examples/panel.jpg --question "$Q" --out /tmp/cuda.png --set model.device=cuda | tee "$OUT"/edit-cuda.json
timeout 40 /tmp/bin/etchr-cpu edit --image examples/panel.jpg --question "$Q" --out /tmp/cpu.png --set model.device=cpu | tee "$OUT"/edit-cpu.json

step plan_latency on CUDA
ETCHR_BENCH_ITERS=30 ETCHR_BENCH_GPU=1 RUST_LOG=info timeout 90 /tmp/bin/plan_latency-cuda | tee "$OUT"/plan-latency-cuda.json
step plan_latency on the 16-core CPU
ETCHR_BENCH_ITERS=30 timeout 90 /tmp/bin/plan_latency-cpu | tee "$OUT"/plan-latency-cpu16.json

step Stage 1 training steps, GPU vs CPU
A="--train-items 64 --val-items 8 --eval-every 100000 --checkpoint-every 100000 --quiet --seed 7"
timeout 90 /tmp/bin/etchr-cuda train sft --gpu --out /tmp/g5 $A --steps 5 2>&1 | tail -3
timeout 120 /tmp/bin/etchr-cuda train sft --gpu --out /tmp/g45 $A --steps 45 2>&1 | tail -3
timeout 90 /tmp/bin/etchr-cpu train sft --out /tmp/c3 $A --steps 3 2>&1 | tail -3
timeout 120 /tmp/bin/etchr-cpu train sft --out /tmp/c9 $A --steps 9 2>&1 | tail -3

fi

step http_edit on 16 cores
cd /work/main && timeout 120 /tmp/bin/http_edit --bench 2>&1 | tail -30; cd "$R"
cp /work/main/bench/out/http-edit.json /work/main/bench/out/proxy-overhead.json "$OUT"/ 2>/dev/null

step proxy_overhead on 16 cores
cd /work/main && ETCHR_BENCH_SECS=30 timeout 330 /tmp/bin/proxy_overhead --bench 2>&1 | tail -30; cd "$R"
cp /work/main/bench/out/http-edit.json /work/main/bench/out/proxy-overhead.json "$OUT"/ 2>/dev/null
step done
