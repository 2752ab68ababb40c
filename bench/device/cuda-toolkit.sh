#!/usr/bin/env bash
# Builds the `--features cuda` binary and benches on a machine without a CUDA install: CUDA 13.0
# (nvcc, headers, cuBLAS, cuRAND, NVRTC) from NVIDIA's PyPI wheels, and Debian's non-free libcuda1
# as the link-time libcuda (the driver's own is used at run time). Output: /work/cuda-target.
# About 40 minutes on 2 cores (candle-kernels compiles its quantized kernels too).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${CUDA_WHEELS_ROOT:-/opt/cu13x}
C=$root/nvidia/cu13
if [ ! -x "$C/bin/nvcc" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp" "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cublas==13.0.*" \
    "nvidia-curand" "nvidia-cuda-nvrtc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
    "nvidia-cuda-cccl==13.0.*"
  mkdir -p "$root"
  for w in "$tmp"/*.whl; do unzip -q -o "$w" -d "$root"; done
  (cd "$C/lib" && for l in libcublas libcublasLt libcudart libnvrtc; do ln -sf $l.so.13 $l.so; done \
    && ln -sf libcurand.so.10 libcurand.so)
  ln -sfn "$C/lib" "$C/lib64"
  # The link-time libcuda: Debian's non-free driver library (any recent version links).
  if ! apt-cache policy libcuda1 | grep -q Candidate:.*[0-9]; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/etchr-nonfree.sources
    apt-get update -qq
  fi
  (cd "$tmp" && apt-get download libcuda1 && dpkg -x libcuda1_*.deb x)
  mkdir -p "$C/lib/stubs"
  cp -a "$tmp"/x/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.* "$C/lib/stubs/"
  (cd "$C/lib/stubs" && so=$(ls libcuda.so.*.* | head -1) && ln -sf "$so" libcuda.so && ln -sf "$so" libcuda.so.1)
  rm -rf "$tmp"
fi
export CUDA_HOME=$C CUDA_PATH=$C CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export PATH=$C/bin:$PATH CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/cuda-target}
cargo build --release --features cuda --bin etchr
cargo bench -p etchr-model --features cuda --bench plan_latency --no-run
