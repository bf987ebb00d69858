package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestGenkeyPrintsAUsableKey(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"genkey"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("genkey exit %d: %s", code, &stderr)
	}
	printed := strings.TrimSpace(stdout.String())
	key, err := fernet.ParseKey(printed)
	if err != nil || key.Encode() != printed {
		t.Fatalf("genkey printed %q, which is not a canonical key (%v)", printed, err)
	}
}

func TestRefusesToStartWithoutAUsableKey(t *testing.T) {
	const badKey = "dGhpcyBpcyBub3QgYSBrZXk="
	tests := []struct {
		name     string
		vars     map[string]string
		wantText []string
	}{
		{"no key", nil, []string{"DJANGO_ENCRYPTION_KEY", "fernet-sidecar genkey", "--dev"}},
		{"malformed key", map[string]string{"DJANGO_ENCRYPTION_KEY": badKey}, []string{"DJANGO_ENCRYPTION_KEY:", "decodes to 17 bytes"}},
		{"renamed variable", map[string]string{"FERNET_SIDECAR_KEY_ENV": "TOTP_ENCRYPTION_KEY"}, []string{"TOTP_ENCRYPTION_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run([]string{"--addr", "127.0.0.1:0", "--metrics-addr", ""}, env(tt.vars), io.Discard, &stderr)
			if code == 0 {
				t.Fatal("started without a usable key")
			}
			for _, want := range tt.wantText {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not say %q", &stderr, want)
				}
			}
			if strings.Contains(stderr.String(), badKey) {
				t.Error("stderr echoes the key")
			}
		})
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	vars := env(map[string]string{
		"FERNET_SIDECAR_ADDR":             "unix:///run/fernet.sock",
		"FERNET_SIDECAR_METRICS_ADDR":     "0.0.0.0:9464",
		"FERNET_SIDECAR_SHUTDOWN_TIMEOUT": "3s",
	})
	cfg, err := parseConfig([]string{"--metrics-addr", "127.0.0.1:1"}, vars, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "unix:///run/fernet.sock" || cfg.metricsAddr != "127.0.0.1:1" || cfg.shutdownTimeout != 3*time.Second {
		t.Fatalf("config = %+v: want addr and timeout from the environment, metrics-addr from the flag", cfg)
	}
	if _, err := parseConfig(nil, env(map[string]string{"FERNET_SIDECAR_MAX_BATCH_ITEMS": "lots"}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "FERNET_SIDECAR_MAX_BATCH_ITEMS") {
		t.Fatalf("a bad variable must be named in the error, got %v", err)
	}
}

func TestAllowMethods(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), io.Discard)
	if err != nil || cfg.allowMethods != nil {
		t.Fatalf("default allow-methods = %v, %v; want nil (all)", cfg.allowMethods, err)
	}
	cfg, err = parseConfig(nil, env(map[string]string{"FERNET_SIDECAR_ALLOW_METHODS": "VerifyTOTP, CreateTOTP"}), io.Discard)
	if err != nil || !slices.Equal(cfg.allowMethods, []string{"VerifyTOTP", "CreateTOTP"}) {
		t.Fatalf("FERNET_SIDECAR_ALLOW_METHODS: allow-methods = %v, %v", cfg.allowMethods, err)
	}
	_, err = parseConfig([]string{"--allow-methods", "Encrypt,Decyrpt"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"Decyrpt"`) {
		t.Fatalf("a misspelt method: %v, want an error naming it", err)
	}
}

func TestBadArgumentsExit2(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"serve-please"}, {"--max-batch-items", "0"}, {"--allow-methods", "Everything"}} {
		if code := run(args, env(nil), io.Discard, io.Discard); code != 2 {
			t.Errorf("run(%q) exit %d, want 2", args, code)
		}
	}
}

func TestNonLoopbackAddressNeedsTLSOrInsecure(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--addr", "127.0.0.1:50051"}, ""},
		{[]string{"--addr", "unix:///run/fernet.sock"}, ""},
		{[]string{"--addr", "0.0.0.0:50051"}, "reachable from other machines"},
		{[]string{"--addr", ":50051"}, "reachable from other machines"},
		{[]string{"--addr", "0.0.0.0:50051", "--insecure"}, ""},
		{[]string{"--addr", "0.0.0.0:50051", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, ""},
		{[]string{"--tls-cert-file", "c.pem"}, "go together"},
		{[]string{"--tls-client-ca-file", "ca.pem"}, "go together"},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, env(nil), io.Discard)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseConfig(%q): %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseConfig(%q) = %v, want an error saying %q", tt.args, err, tt.wantErr)
		}
	}
}
