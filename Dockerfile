# pulsar-sidecar image: a static Go binary (CGO off; the SQLite driver is
# pure Go) on a distroless base, running as the non-root user 65532.
#
#   make image                      # podman build -t localhost/pulsar-sidecar:dev .
#   docker build -t pulsar-sidecar .
#
# Base images are build arguments, so a mirror can be used:
#   --build-arg GO_IMAGE=mirror.example.com/library/golang:1.26
#   --build-arg RUNTIME_IMAGE=mirror.example.com/distroless/static-debian12:nonroot
# The runtime image must provide the user 65532 (distroless's "nonroot"), a
# writable /tmp and CA certificates (for TLS to Pulsar, Redis, Elasticsearch).
# Without a registry, .ci/image-bases builds local stand-ins for both (see
# docs/production.md, "Image").
#
# Build with `--format docker` (podman) to keep the HEALTHCHECK; the OCI
# format has none, and Kubernetes ignores it anyway (the chart has probes).

ARG GO_IMAGE=docker.io/library/golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# A Go module proxy mirror, or "off" to build only from a module cache
# mounted at /go/pkg/mod (make image-offline: nothing to download then, and
# `go mod download` would also want modules of other platforms).
ARG GOPROXY
COPY go.mod go.sum ./
RUN if [ "$GOPROXY" != off ]; then go mod download; fi
COPY . .
# Stamped into the binary (pulsar-sidecar --version, psc_build_info).
ARG VERSION=devel
ARG REVISION=unknown
RUN go build -trimpath \
      -ldflags "-s -w -X github.com/pulsar-sidecar/pulsar-sidecar/internal/version.version=${VERSION} -X github.com/pulsar-sidecar/pulsar-sidecar/internal/version.revision=${REVISION}" \
      -o /out/pulsar-sidecar ./cmd/pulsar-sidecar \
 && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
ARG VERSION=devel
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pulsar-sidecar" \
      org.opencontainers.image.description="HTTP proxy and sidecar in front of Apache Pulsar for billing-grade messaging" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/pulsar-sidecar /usr/local/bin/pulsar-sidecar
# The data directory: the spool, the trace store and its outbox, the
# embedded broker's data. A volume, so it outlives the container; the
# chart mounts a PersistentVolumeClaim or an emptyDir here.
COPY --from=build --chown=65532:65532 /out/data /var/lib/pulsar-sidecar
ENV PSC_DATA_DIR=/var/lib/pulsar-sidecar
VOLUME ["/var/lib/pulsar-sidecar"]
# The HTTP data plane, /healthz, /readyz and /metrics. The sidecar listens
# on 127.0.0.1:8088 unless PSC_LISTEN (or listen:) says otherwise; a
# non-loopback listener needs apps with tokens (README, "Apps and tokens").
EXPOSE 8088
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/pulsar-sidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pulsar-sidecar"]
