# Build:  docker build -t fernet-sidecar --build-arg VERSION=$(git describe --always --dirty) .
# Run:    docker run -e DJANGO_ENCRYPTION_KEY=... fernet-sidecar
# Deploy: deploy/kubernetes/ and deploy/compose/, explained in docs/deployment.md.
# deploy/internal/schemacheck/dockerfile_test.go checks this file without a
# Docker engine: it parses it with BuildKit's parser, and checks the user,
# the entrypoint, the ports and the health check against the binary's flags;
# deploy/dockerfile_test.go runs the build command below as written;
# deploy/container_test.go builds it with buildah and runs the image with
# podman (docs/deployment.md#without-docker-buildah-and-podman).

# The two base images, pinned by digest (the multi-platform index's), so
# that whoever can push a tag cannot change what builds or runs beside your
# keys. Build arguments, so that a build can swap them: a mirror's, newer
# digests, or the tests' local stand-ins (offline). docs/deployment.md says
# how to refresh them.
ARG BUILDER_IMAGE=golang:1.26@sha256:3aff6657219a4d9c14e27fb1d8976c49c29fddb70ba835014f477e1c70636647
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian13:nonroot@sha256:1c2c046bc09ed40fad370b599a0b1ae7987f55b01e247cf27a7c27cd97e5bbc7

# The build runs on the builder's own platform and cross-compiles, which a
# static Go binary allows (docker buildx build --platform linux/arm64 ...).
FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# Static (no cgo), so the final image needs no libc.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/fernet-sidecar ./cmd/fernet-sidecar

# distroless static: CA certificates, tzdata and /etc/passwd; no shell, no
# package manager. Nothing below may need a shell.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/fernet-sidecar /fernet-sidecar
# 65532 is distroless' "nonroot"; numeric, so that Kubernetes' runAsNonRoot
# can check it without reading /etc/passwd.
USER 65532:65532
# The API stays on 127.0.0.1:50051: the app beside it shares the loopback
# (a Kubernetes pod, or Compose's network_mode "service:..."), and nothing
# else should reach it. Health (grpc.health.v1 only, for Kubernetes' gRPC
# probes, which come from the kubelet, outside the pod) and metrics (for
# Prometheus) listen on every interface.
ENV FERNET_SIDECAR_HEALTH_ADDR=:50052 \
    FERNET_SIDECAR_METRICS_ADDR=:9464
EXPOSE 50052 9464
# Docker's and Compose's health check. Kubernetes ignores it and uses the
# probes in deploy/kubernetes/. The subcommand asks the health port above;
# its own deadline (3s) is shorter than --timeout.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/fernet-sidecar", "healthcheck"]
ENTRYPOINT ["/fernet-sidecar"]
