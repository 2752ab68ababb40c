# syntax=docker/dockerfile:1
# Multi-stage build of the ETCHR sidecar: a slim CPU image and a CUDA image, picked by target.
#
#   docker build --target runtime -t etchr .                      # CPU (debian:bookworm-slim)
#   docker build --target runtime-cuda -t etchr:cuda .            # CUDA 12.8, sm_90 (H100/H200)
#   docker build --target runtime-cuda --build-arg CUDA_COMPUTE_CAP=89 -t etchr:cuda-sm89 .
#
#   docker run -p 8080:8080 etchr
#   docker run --gpus all -p 8080:8080 etchr:cuda      # editing model on CUDA device 0
#
# Without --target the last stage, the CPU `runtime`, is built; BuildKit builds only the
# stages the chosen target needs.
# Lint: deploy/lint.sh (hadolint).

ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=22.04

# ---------------------------------------------------------------------------------------------
# CUDA build and runtime (`cargo build --features cuda`: the editing model runs on the GPU;
# [model] device = "auto" picks CUDA device 0 and logs a CPU fallback when there is none)
# ---------------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build-cuda
# Compute capability the kernels are compiled for (90 = Hopper: H100, H200). nvidia-smi is not
# available during `docker build`, so it must be given: 80 A100, 86 A10/RTX 30xx, 89 L4/L40S.
ARG CUDA_COMPUTE_CAP=90
ARG RUST_VERSION=1.95.0
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:${PATH}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Not version-pinned: Ubuntu replaces a pinned build-essential/curl version in its archive with
# every security update, which would break the build; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential ca-certificates cmake curl nasm pkg-config \
 && rm -rf /var/lib/apt/lists/*
# The toolchain is pinned to the same release as the CPU build image.
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
      | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}" \
 && rustc --version && nvcc --version
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin etchr --features cuda,turbojpeg

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS runtime-cuda
RUN useradd --system --uid 10001 --create-home etchr
COPY --from=build-cuda /src/target/release/etchr /usr/local/bin/etchr
COPY config/etchr.toml /etc/etchr/etchr.toml
USER 10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ETCHR_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENV ETCHR_LISTEN=0.0.0.0:8080 \
    ETCHR_CONFIG=/etc/etchr/etchr.toml
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/etchr"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# CPU build and runtime (last, so a plain `docker build .` gives the CPU image)
# ---------------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
# cmake and nasm build the statically linked libjpeg-turbo of the `turbojpeg` feature (JPEG
# encoding ~3x faster than the pure-Rust encoder); the runtime image needs nothing for it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake nasm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --bin etchr --features turbojpeg

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --create-home etchr
COPY --from=build /src/target/release/etchr /usr/local/bin/etchr
COPY config/etchr.toml /etc/etchr/etchr.toml
USER 10001
# No curl in the slim image: probe /healthz with bash's /dev/tcp.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ETCHR_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENV ETCHR_LISTEN=0.0.0.0:8080 \
    ETCHR_CONFIG=/etc/etchr/etchr.toml
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/etchr"]
CMD ["serve"]
