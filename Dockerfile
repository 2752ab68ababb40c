# syntax=docker/dockerfile:1
# Multi-stage build of the ETCHR sidecar (CPU image).
#   docker build -t etchr .
#   docker run -p 8080:8080 etchr
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin etchr

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
