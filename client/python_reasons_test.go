package client_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// pythonReasons prints what the Python package says the reasons are: the
// constants of _errors.py that spell a reason (their name is their value),
// the ones fernet_sidecar exports, TOKEN_REASONS and ERROR_DOMAIN.
const pythonReasons = `
import json
import fernet_sidecar
from fernet_sidecar import _errors
names = [k for k, v in vars(_errors).items() if k.isupper() and v == k]
print(json.dumps({
    "reasons": names,
    "exported": [n for n in fernet_sidecar.__all__ if n in names],
    "token": list(_errors.TOKEN_REASONS),
    "domain": _errors.ERROR_DOMAIN,
}))
`

// TestPythonReasonsAreGos holds the Python package's reasons equal to
// package reasons, the one list, so that the two cannot drift.
func TestPythonReasonsAreGos(t *testing.T) {
	py := testenv.LookPath(t, python)
	cmd := exec.CommandContext(t.Context(), py, "-c", pythonReasons)
	cmd.Dir = filepath.Join(testenv.RepoRoot(t), "client", "python")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONNOUSERSITE=1", "PYTHONPATH=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", py, err)
	}
	var got struct {
		Reasons, Exported, Token []string
		Domain                   string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s printed %q: %v", py, out, err)
	}
	same := func(what string, got, want []string) {
		t.Helper()
		got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q (package reasons)", what, got, want)
		}
	}
	same("the reason constants of _errors.py", got.Reasons, reasons.All[:])
	same("the reasons fernet_sidecar exports", got.Exported, reasons.All[:])
	same("TOKEN_REASONS", got.Token, reasons.Token[:])
	if got.Domain != reasons.Domain {
		t.Errorf("ERROR_DOMAIN = %q, want %q", got.Domain, reasons.Domain)
	}
}
