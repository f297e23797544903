# syntax=docker/dockerfile:1
# agenthost for containers (ROSA/EKS): one static-ish binary on a distroless
# base, run as a non-root user. Build: docker build -t agenthost .
# The root filesystem can be read-only (docker run --read-only, or the
# Kubernetes manifests in deploy/k8s); only the data directory is written.

# --- build: the host, and the sample components it embeds (wasm32-wasip2)
FROM docker.io/library/rust:1.95-slim-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p agenthost \
 && install -D -m 0755 target/release/agenthost /out/agenthost \
 && install -d -m 0755 /out/data

# --- run: glibc and libgcc only, uid/gid 65532, no shell
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/agenthost /usr/local/bin/agenthost
COPY --from=build --chown=65532:65532 /out/data /var/lib/agenthost
ENV AGENTHOST_CONFIG=/etc/agenthost \
    AGENTHOST_DATA_DIR=/var/lib/agenthost \
    RUST_LOG=info
USER 65532:65532
VOLUME ["/var/lib/agenthost"]
EXPOSE 8080
# The binary checks itself: the base has no shell and no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/agenthost", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
# SIGTERM: not-ready for shutdown_delay_ms, drain calls in flight, close the trail.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/agenthost"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
