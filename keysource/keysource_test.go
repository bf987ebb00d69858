package keysource

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func source(env map[string]string) Source {
	return Source{
		PrimaryVar:     "DJANGO_ENCRYPTION_KEY",
		DecryptOnlyVar: "OLD_DJANGO_ENCRYPTION_KEY",
		LookupEnv: func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		},
	}
}

func ids(keys []*fernet.Key) []string {
	out := []string{}
	for _, k := range keys {
		out = append(out, k.ID())
	}
	return out
}

func TestLoad(t *testing.T) {
	primary, old1, old2 := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	tests := []struct {
		name            string
		env             map[string]string
		wantDecryptOnly []*fernet.Key
	}{
		{"primary only", map[string]string{"DJANGO_ENCRYPTION_KEY": primary.Encode()}, nil},
		{"primary from a file with a newline", map[string]string{
			"DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, primary.Encode()+"\n"),
		}, nil},
		{"old keys comma-separated, in order", map[string]string{
			"DJANGO_ENCRYPTION_KEY":     primary.Encode(),
			"OLD_DJANGO_ENCRYPTION_KEY": old1.Encode() + ", " + old2.Encode() + ",",
		}, []*fernet.Key{old1, old2}},
		{"old keys from a file, one per line", map[string]string{
			"DJANGO_ENCRYPTION_KEY":          primary.Encode(),
			"OLD_DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, old2.Encode()+"\n\n"+old1.Encode()+"\n"),
		}, []*fernet.Key{old2, old1}},
		{"empty old key variable", map[string]string{
			"DJANGO_ENCRYPTION_KEY":     primary.Encode(),
			"OLD_DJANGO_ENCRYPTION_KEY": "",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded, err := source(tt.env).Load()
			if err != nil {
				t.Fatal(err)
			}
			if loaded.DevKey || loaded.Keyring.Primary().ID() != primary.ID() {
				t.Fatalf("primary = %s (dev %v), want %s", loaded.Keyring.Primary().ID(), loaded.DevKey, primary.ID())
			}
			if got, want := ids(loaded.Keyring.DecryptOnly()), ids(tt.wantDecryptOnly); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("decrypt-only = %v, want %v", got, want)
			}
		})
	}
}

func TestLoadErrorsNameTheVariableNotTheValue(t *testing.T) {
	primary := testkeys.New(t)
	badKey := "c2hvcnQga2V5IHRoYXQgaXMgbm90IDMyIGJ5dGVz" // 30 bytes
	tests := []struct {
		name     string
		env      map[string]string
		wantText []string
		wantIs   error
	}{
		{"no key", map[string]string{}, []string{"DJANGO_ENCRYPTION_KEY", "fernet-sidecar genkey", "--dev"}, ErrNoPrimaryKey},
		{"blank key", map[string]string{"DJANGO_ENCRYPTION_KEY": "  "}, []string{"DJANGO_ENCRYPTION_KEY_FILE"}, ErrNoPrimaryKey},
		{"malformed primary", map[string]string{"DJANGO_ENCRYPTION_KEY": badKey}, []string{"DJANGO_ENCRYPTION_KEY:", "30 bytes"}, nil},
		{"non-ASCII space around the key", map[string]string{"DJANGO_ENCRYPTION_KEY": primary.Encode() + "\u2028"}, []string{"DJANGO_ENCRYPTION_KEY:", "non-ASCII"}, nil},
		{"two primaries", map[string]string{"DJANGO_ENCRYPTION_KEY": primary.Encode() + "," + primary.Encode()}, []string{"more than one key", "OLD_DJANGO_ENCRYPTION_KEY"}, nil},
		{"malformed second old key", map[string]string{
			"DJANGO_ENCRYPTION_KEY":     primary.Encode(),
			"OLD_DJANGO_ENCRYPTION_KEY": primary.Encode() + "," + badKey,
		}, []string{"OLD_DJANGO_ENCRYPTION_KEY, key 2"}, nil},
		{"both variable and file", map[string]string{
			"DJANGO_ENCRYPTION_KEY":      primary.Encode(),
			"DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, primary.Encode()),
		}, []string{"both DJANGO_ENCRYPTION_KEY and DJANGO_ENCRYPTION_KEY_FILE"}, nil},
		{"missing file", map[string]string{"DJANGO_ENCRYPTION_KEY_FILE": "/nonexistent/key"}, []string{"DJANGO_ENCRYPTION_KEY_FILE (/nonexistent/key)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := source(tt.env).Load()
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("error %v is not %v", err, tt.wantIs)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			for _, secret := range []string{badKey, primary.Encode()} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes a key", err)
				}
			}
		})
	}
}

func TestLoadFallsBackToAPersistentDevKey(t *testing.T) {
	old := testkeys.New(t)
	src := source(map[string]string{"OLD_DJANGO_ENCRYPTION_KEY": old.Encode()})
	src.DevKeyFile = filepath.Join(t.TempDir(), "dev.key")

	first, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !first.DevKey || !first.DevKeyCreated || len(first.Keyring.DecryptOnly()) != 1 {
		t.Fatalf("first load = %+v, want a new dev key plus the old key", first)
	}
	info, err := os.Stat(src.DevKeyFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file mode = %v (%v), want 0600", info.Mode().Perm(), err)
	}
	second, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	if second.DevKeyCreated || second.Keyring.Primary().ID() != first.Keyring.Primary().ID() {
		t.Fatal("a restart must reuse the dev key, or data written before it becomes unreadable")
	}
}

func TestConfiguredKeyWinsOverDevKey(t *testing.T) {
	primary := testkeys.New(t)
	src := source(map[string]string{"DJANGO_ENCRYPTION_KEY": primary.Encode()})
	src.DevKeyFile = filepath.Join(t.TempDir(), "dev.key")
	loaded, err := src.Load()
	if err != nil || loaded.DevKey || loaded.Keyring.Primary().ID() != primary.ID() {
		t.Fatalf("Load = %+v, %v; want the configured key", loaded, err)
	}
	if _, err := os.Stat(src.DevKeyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("no dev key file may be made when a key is configured")
	}
}

func TestDevKeyRejectsACorruptFile(t *testing.T) {
	path := writeFile(t, "not a key")
	if _, _, err := DevKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("DevKey error = %v, want one naming %s", err, path)
	}
	if content, _ := os.ReadFile(path); string(content) != "not a key" {
		t.Fatal("a corrupt dev key file must be left as it is, never overwritten")
	}
}

func TestDevKeyRefusesAFileItCannotTrust(t *testing.T) {
	key := testkeys.New(t)
	tests := []struct {
		name string
		make func(path string) error
		want string
	}{
		{"readable by others", func(path string) error { return writeMode(path, key.Encode(), 0o644) }, "mode 0644"},
		{"writable by the group", func(path string) error { return writeMode(path, key.Encode(), 0o620) }, "mode 0620"},
		{"a symbolic link", func(path string) error {
			return os.Symlink(writeFile(t, key.Encode()), path)
		}, "symbolic link"},
		{"a directory", func(path string) error { return os.Mkdir(path, 0o700) }, "not a regular file"},
		{"a FIFO", func(path string) error { return syscall.Mkfifo(path, 0o600) }, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dev.key")
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			if _, _, err := DevKey(path); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("DevKey = %v, want an error naming %s and saying %q", err, path, tt.want)
			}
		})
	}
	// Owned by someone else: only root can make such a file to test with.
	if os.Getuid() == 0 {
		path := filepath.Join(t.TempDir(), "dev.key")
		must(t, os.WriteFile(path, []byte(key.Encode()), 0o600))
		must(t, os.Chown(path, 12345, 12345))
		if _, _, err := DevKey(path); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
			t.Fatalf("DevKey of another user's file = %v, want a refusal", err)
		}
	}
}

// writeMode writes a file with exactly mode, whatever the umask.
func writeMode(path, content string, mode os.FileMode) error {
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func listSource(env map[string]string) Source {
	src := source(env)
	src.ListVar = "FERNET_KEYS"
	return src
}

// TestLoadKeyList: one file holds every key, the primary first, so that
// one rename changes them all.
func TestLoadKeyList(t *testing.T) {
	primary, old1, old2 := testkeys.New(t), testkeys.New(t), testkeys.New(t)
	for name, env := range map[string]map[string]string{
		"file":     {"FERNET_KEYS_FILE": writeFile(t, primary.Encode()+"\n"+old1.Encode()+"\r\n\n"+old2.Encode()+"\n")},
		"variable": {"FERNET_KEYS": primary.Encode() + "\n" + old1.Encode() + "\n" + old2.Encode()},
	} {
		t.Run(name, func(t *testing.T) {
			loaded, err := listSource(env).Load()
			if err != nil {
				t.Fatal(err)
			}
			got := append([]string{loaded.Keyring.Primary().ID()}, ids(loaded.Keyring.DecryptOnly())...)
			if want := []string{primary.ID(), old1.ID(), old2.ID()}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("keys = %v, want %v (primary first)", got, want)
			}
		})
	}
	t.Run("derived secrets, byte for byte", func(t *testing.T) {
		src := listSource(map[string]string{"FERNET_KEYS_FILE": writeFile(t, "new, secret\n old secret \n")})
		src.PrimaryDerivation, src.DecryptOnlyDerivation = DerivationDjangoFernetFields, DerivationDjangoFernetFields
		loaded, err := src.Load()
		if err != nil {
			t.Fatal(err)
		}
		newKey, _ := DjangoFernetFieldsKey("new, secret")
		oldKey, _ := DjangoFernetFieldsKey(" old secret ")
		if loaded.Keyring.Primary().ID() != newKey.ID() || ids(loaded.Keyring.DecryptOnly())[0] != oldKey.ID() {
			t.Fatal("the derived list's keys are not the secrets' keys, in order")
		}
		if !loaded.Derived[newKey.ID()] || !loaded.Derived[oldKey.ID()] {
			t.Fatalf("Derived = %v, want both keys", loaded.Derived)
		}
	})
	t.Run("with the two variables too", func(t *testing.T) {
		_, err := listSource(map[string]string{
			"FERNET_KEYS":           primary.Encode(),
			"DJANGO_ENCRYPTION_KEY": primary.Encode(),
		}).Load()
		if err == nil || !strings.Contains(err.Error(), "unset DJANGO_ENCRYPTION_KEY") {
			t.Fatalf("Load = %v, want a refusal naming DJANGO_ENCRYPTION_KEY", err)
		}
	})
	t.Run("a bad line", func(t *testing.T) {
		_, err := listSource(map[string]string{"FERNET_KEYS": primary.Encode() + "\nnot a key"}).Load()
		if err == nil || !strings.Contains(err.Error(), "FERNET_KEYS, line 2") || strings.Contains(err.Error(), primary.Encode()) {
			t.Fatalf("Load = %v, want an error naming line 2 and no key", err)
		}
	})
}

func TestLoadNotesKeysFromTheEnvironment(t *testing.T) {
	primary, old := testkeys.New(t), testkeys.New(t)
	loaded, err := source(map[string]string{
		"DJANGO_ENCRYPTION_KEY":          primary.Encode(),
		"OLD_DJANGO_ENCRYPTION_KEY_FILE": writeFile(t, old.Encode()),
	}).Load()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(loaded.FromEnvironment, ",") != "DJANGO_ENCRYPTION_KEY" {
		t.Fatalf("FromEnvironment = %v, want only DJANGO_ENCRYPTION_KEY", loaded.FromEnvironment)
	}
}
