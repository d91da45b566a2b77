# syntax=docker/dockerfile:1
#
# One image per service binary, all built from one compile of the workspace:
#
#   docker build --target catalog        -t REGISTRY/kosha-catalog:TAG .
#   docker build --target inventory      -t REGISTRY/kosha-inventory:TAG .
#   docker build --target scheduler      -t REGISTRY/kosha-scheduler:TAG .
#   docker build --target order          -t REGISTRY/kosha-order:TAG .
#   docker build --target purchase-order -t REGISTRY/kosha-purchase-order:TAG .
#
# BuildKit builds the shared `build` stage once and reuses it for every target.
#
# The runtime stage is distroless: glibc and libgcc (which the Rust binaries link) and
# nothing else, no shell and no package manager. Each binary runs as PID 1 under a numeric
# non-root user and handles SIGTERM itself (it reports NOT_SERVING, stops accepting and
# drains in-flight calls), and it starts no child processes, so no init is needed to
# forward signals or reap zombies. Nothing is written to the root filesystem: the services
# use PostgreSQL through a URL read from a mounted file, so the container runs with a
# read-only root filesystem.
#
# No HEALTHCHECK: Kubernetes ignores it and probes the gRPC health service instead, and
# the runtime image has no shell or client to run one with.
# checkov:skip=CKV_DOCKER_2: health is probed by Kubernetes through gRPC, not by Docker

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and compiled dependencies between builds; the
# binaries are copied out of the cached target directory before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin kosha-catalog \
        --bin kosha-inventory \
        --bin kosha-scheduler \
        --bin kosha-order \
        --bin kosha-purchase-order \
    && mkdir -p /out \
    && cp target/release/kosha-catalog target/release/kosha-inventory \
          target/release/kosha-scheduler target/release/kosha-order \
          target/release/kosha-purchase-order /out/

# 65532 is the distroless `nonroot` user; the manifests run the pods as the same number.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
EXPOSE 50051

FROM runtime AS catalog
COPY --from=build /out/kosha-catalog /usr/local/bin/kosha-catalog
ENTRYPOINT ["/usr/local/bin/kosha-catalog"]

FROM runtime AS inventory
COPY --from=build /out/kosha-inventory /usr/local/bin/kosha-inventory
ENTRYPOINT ["/usr/local/bin/kosha-inventory"]

FROM runtime AS scheduler
COPY --from=build /out/kosha-scheduler /usr/local/bin/kosha-scheduler
ENTRYPOINT ["/usr/local/bin/kosha-scheduler"]

FROM runtime AS order
COPY --from=build /out/kosha-order /usr/local/bin/kosha-order
ENTRYPOINT ["/usr/local/bin/kosha-order"]

FROM runtime AS purchase-order
COPY --from=build /out/kosha-purchase-order /usr/local/bin/kosha-purchase-order
ENTRYPOINT ["/usr/local/bin/kosha-purchase-order"]
