package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

//go:embed pybench.py
var pybenchScript []byte

// pythonBench runs pybench.py with Debian's Python: cryptography in
// process, and the Python client (client/python) against the servers.
type pythonBench struct {
	python, script, clientPath string
	versions                   map[string]string
}

func newPythonBench(ctx context.Context, python, repo, tmp string) (*pythonBench, error) {
	p := &pythonBench{python: python, script: filepath.Join(tmp, "pybench.py"), clientPath: filepath.Join(repo, "client", "python")}
	if err := os.WriteFile(p.script, pybenchScript, 0o600); err != nil {
		return nil, err
	}
	out, err := p.command(ctx, nil, "probe", p.clientPath)
	if err != nil {
		return nil, fmt.Errorf("%w (Debian: apt-get install python3-cryptography python3-grpcio python3-protobuf; or -skip-python)", err)
	}
	if err := json.Unmarshal(out, &p.versions); err != nil {
		return nil, fmt.Errorf("pybench.py probe: %w", err)
	}
	if p.versions["cryptography"] == "" {
		return nil, fmt.Errorf("%s has no cryptography (%s): apt-get install python3-cryptography, or -skip-python", python, p.versions["cryptography_error"])
	}
	return p, nil
}

func (p *pythonBench) command(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.python, append([]string{p.script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s pybench.py %s: %w\n%s", p.python, args[0], err, stderr.Bytes())
	}
	return out, nil
}

// pyFigures are the numbers pybench.py run reports; the keys name them.
var pyFigures = []string{
	"py_encrypt_us", "py_decrypt_us", "py_rotate_us", "py_rotate_per_s",
	"client_rotate_many_per_s", "client_decrypt_p50_us", "bare_echo_decrypt_p50_us", "bare_sidecar_decrypt_p50_us",
	"bare_echo_deadline_decrypt_p50_us", "client_nodeadline_decrypt_p50_us",
}

func (p *pythonBench) run(ctx context.Context, w *workload, sidecar, echo *server, seconds time.Duration, res *results) error {
	cfg, err := json.Marshal(map[string]any{
		"primary":       w.primary.Encode(),
		"old":           w.old.Encode(),
		"plaintext_hex": hex.EncodeToString(w.plaintext),
		"token":         w.token,
		"old_tokens":    w.oldTokens,
		"sidecar":       "unix://" + sidecar.socket,
		"echo":          "unix://" + echo.socket,
		"client_path":   p.clientPath,
		"seconds":       seconds.Seconds(),
	})
	if err != nil {
		return err
	}
	out, err := p.command(ctx, cfg, "run")
	if err != nil {
		return err
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("pybench.py run: %w", err)
	}
	if why, ok := got["client_error"].(string); ok {
		res.note("client", why)
	}
	for _, name := range pyFigures {
		if v, ok := got[name].(float64); ok {
			res.add("py/"+name, v)
		}
	}
	return nil
}
