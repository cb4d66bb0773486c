# Serin's images, from one `serin` binary (static, glibc):
#   docker build -t ghcr.io/serin/serin:0.1.0 .                                   controller (default)
#   docker build --target loadtester -t ghcr.io/serin/serin-loadtester:0.1.0 .   load tester
# The controller image is distroless/static: no shell, no shared libc, user 65532, works with a
# read-only root filesystem. The load tester image adds what its tasks run: bash (type: bash),
# curl and jq (acceptance tests), kubectl (type: kubectl) and helm (type: helm/helmv3); `hey` is
# built into serin. Without a Docker engine, tools/oci-image writes the controller image as an
# OCI layout (docs/install.md).

ARG RUST_VERSION=1.95
ARG GO_VERSION=1.26

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The production profile (Cargo.toml): whole-program optimisation, less code and CPU. Without
# the default `workstation` feature: the images run `controller` and `loadtester`, not the dev
# cluster, the demo or the simulators. glibc linked statically (`crt-static`; RUSTFLAGS with
# `--target` reach only the binary, not build scripts or proc macros): the binary needs no
# shared library, like a musl build, and copies memory with glibc's routines (musl's memcpy
# took a fifth of the controller's CPU, glibc's a tenth: docs/performance.md, issue 18's
# sixteenth pass).
RUN RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_PRODUCTION_STRIP=symbols \
    cargo build --profile production --locked --no-default-features -p serin --bin serin --target x86_64-unknown-linux-gnu \
 && install -m 0755 target/x86_64-unknown-linux-gnu/production/serin /serin

# helm, pinned by tools/helm/go.mod (the version the packaging tests use).
FROM docker.io/library/golang:${GO_VERSION}-bookworm AS helm
WORKDIR /src/tools/helm
COPY tools/helm/go.mod tools/helm/go.sum ./
RUN CGO_ENABLED=0 go build -trimpath -o /helm helm.sh/helm/v3/cmd/helm

FROM docker.io/library/debian:bookworm-slim AS loadtester
ARG KUBECTL_VERSION=v1.32.4
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates curl jq \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSLo /usr/local/bin/kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" \
 && echo "$(curl -fsSL "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl.sha256")  /usr/local/bin/kubectl" | sha256sum -c - \
 && chmod 0755 /usr/local/bin/kubectl \
 && groupadd -g 65532 nonroot && useradd -u 65532 -g 65532 -m -d /home/nonroot -s /bin/bash nonroot
COPY --from=helm /helm /usr/local/bin/helm
COPY --from=build /serin /usr/local/bin/serin
USER 65532:65532
ENV HOME=/home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/serin"]
CMD ["loadtester", "-port=8080", "-log-level=info", "-timeout=1h"]
LABEL org.opencontainers.image.title="serin-loadtester" \
      org.opencontainers.image.description="Serin's Flagger-compatible load tester with bash, curl, jq, kubectl and helm" \
      org.opencontainers.image.licenses="Apache-2.0"

FROM gcr.io/distroless/static-debian12:nonroot AS controller
COPY --from=build /serin /usr/local/bin/serin
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/serin"]
CMD ["controller"]
LABEL org.opencontainers.image.title="serin" \
      org.opencontainers.image.description="Progressive delivery operator for Kubernetes, compatible with Flagger's API" \
      org.opencontainers.image.licenses="Apache-2.0"
