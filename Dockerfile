# Build:  docker build -t fernet-sidecar --build-arg VERSION=$(git describe --always --dirty) .
# Run:    docker run -e DJANGO_ENCRYPTION_KEY=... fernet-sidecar

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static, so the final image needs no libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" \
      -o /out/fernet-sidecar ./cmd/fernet-sidecar

# distroless static: CA certificates and /etc/passwd, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fernet-sidecar /fernet-sidecar
# 65532 is distroless' "nonroot"; numeric so Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# The app beside it shares the pod's loopback, so gRPC stays on 127.0.0.1:50051.
# Prometheus scrapes from outside the pod, so metrics listen on every interface.
ENV FERNET_SIDECAR_METRICS_ADDR=0.0.0.0:9464
EXPOSE 50051 9464
ENTRYPOINT ["/fernet-sidecar"]
