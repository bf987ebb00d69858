package client_test

import "testing"

// TestDjangoAsyncExample runs client/python/examples/django_async's tests,
// its async views on the asyncio client, with Django's own runner against
// the real sidecar on a Unix socket.
func TestDjangoAsyncExample(t *testing.T) {
	py := requirePython(t)
	primary := newKey(t)
	addr := startUnixSidecar(t, primary)
	runPython(t, py, []string{"FERNET_SIDECAR_TARGET=" + addr, "SIDECAR_TEST_PRIMARY_KEY=" + primary.Encode()},
		"-m", "django", "test", "examples.django_async", "--settings", "examples.django_async.settings", "--verbosity", "2")
}
