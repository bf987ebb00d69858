// Package schemacheck has no code: its tests decode the deployment files
// strictly, with the libraries Kubernetes, prometheus-operator, Compose,
// Docker and BuildKit (the Dockerfile) themselves use, and check what the
// files promise.
//
// It is a module of its own, so that the sidecar's module does not depend
// on those libraries; it requires the sidecar's module (replaced by the
// repository's copy) for the test helpers in internal/. Its tests run as part of the sidecar's `go test
// ./...`: deploy/manifests_test.go runs them (and go vet and staticcheck on
// them) with `go test` in this directory. By hand:
//
//	cd deploy/internal/schemacheck && go test ./...
package schemacheck
