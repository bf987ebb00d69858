// Package deploy holds no code: its tests check the deployment files, which
// are examples that people copy, against the real binary.
//
//   - ../Dockerfile: its build command is run as written and the result
//     must be static (dockerfile_test.go); parsed with BuildKit's parser,
//     its user, entrypoint, ports and health check must agree with the
//     binary's flags (internal/schemacheck/dockerfile_test.go).
//   - ../Dockerfile, built and run: buildah builds it as written, offline,
//     on local stand-ins for its base images (testdata/container/), and
//     podman runs the image in a pod, deployment.yaml with kube play and
//     compose.yaml with podman-compose (container_test.go).
//   - ../README.md and ../docs/grpcurl.md: the grpcurl recipes run as
//     written against a sidecar (recipes_test.go).
//   - prometheus/: promtool checks and unit-tests the alert rules, and a real
//     Prometheus scrapes a real sidecar (prometheus_test.go).
//   - grafana/: the dashboard, generated in the nested module grafana, whose
//     tests grafana_test.go runs; then every query of the dashboard runs
//     against a real Prometheus scraping a real sidecar and a real
//     Pushgateway that fernetctl pushed to (grafana_test.go).
//   - compose/: as root, a key file bind-mounted as Compose mounts secrets
//     shows the reload procedure docs/deployment.md gives (compose_test.go).
//   - kubernetes/, compose/ and ../.dockerignore: decoded strictly with the
//     Kubernetes, prometheus-operator and Compose libraries in the nested
//     module internal/schemacheck, which has its own go.mod so that the root
//     module does not depend on them; manifests_test.go runs its tests.
//
// FERNET_SIDECAR_MEASURE=1 runs TestMeasureResources, which measures the
// figures that the Kubernetes resource requests come from.
package deploy
