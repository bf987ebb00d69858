package keysource

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
)

// logBuffer is the JSON log of a Reloader, which the test reads while
// its goroutine writes.
type logBuffer struct{ testenv.LogBuffer }

// events returns the log lines whose msg is msg, decoded.
func (b *logBuffer) events(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var found []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if entry["msg"] == msg {
			found = append(found, entry)
		}
	}
	return found
}

func newReloaderForFile(t *testing.T, path string, observe func(*fernet.Keyring, error)) (*Reloader, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	return newReloader(t, source(map[string]string{"DJANGO_ENCRYPTION_KEY_FILE": path}),
		slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), observe), logs
}

// newReloader loads the keys of src once and makes a Reloader of them, as
// the sidecar does.
func newReloader(t *testing.T, src Source, logger *slog.Logger, observe func(*fernet.Keyring, error)) *Reloader {
	t.Helper()
	loaded, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	return NewReloader(src, NewCurrent(loaded), logger, observe)
}

func watch(t *testing.T, r *Reloader) {
	t.Helper()
	stop, err := r.Watch()
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(stop)
}

func waitForPrimary(t *testing.T, r *Reloader, want *fernet.Key) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Keyring().Primary().ID() != want.ID() {
		if time.Now().After(deadline) {
			t.Fatalf("primary is still %s after 5s, want %s", r.Keyring().Primary().ID(), want.ID())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchReloadsARewrittenFile(t *testing.T) {
	first, second := testkeys.New(t), testkeys.New(t)
	path := writeFile(t, first.Encode())
	r, logs := newReloaderForFile(t, path, nil)
	watch(t, r)

	if err := os.WriteFile(path, []byte(second.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitForPrimary(t, r, second)

	changed := logs.events(t, "keys changed")
	if len(changed) != 1 || changed[0]["before_primary_key_id"] != first.ID() ||
		changed[0]["after_primary_key_id"] != second.ID() || changed[0]["primary_changed"] != true || changed[0]["audit"] != true {
		t.Fatalf("audit events = %v, want one change from %s to %s", changed, first.ID(), second.ID())
	}
	for _, key := range []*fernet.Key{first, second} {
		if strings.Contains(logs.String(), key.Encode()) {
			t.Fatal("a key appears in the log")
		}
	}
}

// TestWatchFollowsAKubernetesSecretSwap replays what the kubelet does to a
// mounted Secret: the file is a symlink through "..data", which is swapped
// to a new timestamped directory by a rename.
func TestWatchFollowsAKubernetesSecretSwap(t *testing.T) {
	first, second := testkeys.New(t), testkeys.New(t)
	mount := t.TempDir()
	writeVersion := func(name string, key *fernet.Key) {
		dir := filepath.Join(mount, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key"), []byte(key.Encode()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..2026_11_01", first)
	must(t, os.Symlink("..2026_11_01", filepath.Join(mount, "..data")))
	must(t, os.Symlink("..data/key", filepath.Join(mount, "key")))

	r, _ := newReloaderForFile(t, filepath.Join(mount, "key"), nil)
	watch(t, r)

	writeVersion("..2026_11_22", second)
	must(t, os.Symlink("..2026_11_22", filepath.Join(mount, "..data_tmp")))
	must(t, os.Rename(filepath.Join(mount, "..data_tmp"), filepath.Join(mount, "..data")))
	must(t, os.RemoveAll(filepath.Join(mount, "..2026_11_01")))
	waitForPrimary(t, r, second)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFailedReloadKeepsTheKeysInUse(t *testing.T) {
	good, next := testkeys.New(t), testkeys.New(t)
	path := writeFile(t, good.Encode())
	var outcomes []error
	r, logs := newReloaderForFile(t, path, func(current *fernet.Keyring, err error) {
		if current.Primary().ID() != good.ID() && err != nil {
			t.Errorf("a failed reload reported keyring %s, want the kept %s", current.Primary().ID(), good.ID())
		}
		outcomes = append(outcomes, err)
	})
	outcomes = outcomes[:0] // the first load; TestEveryLoadIsRecorded checks it
	const garbage = "this is not a key, and it must not be logged"
	tests := []struct {
		name   string
		breaks func()
	}{
		{"garbage", func() { must(t, os.WriteFile(path, []byte(garbage), 0o600)) }},
		{"emptied", func() { must(t, os.WriteFile(path, nil, 0o600)) }},
		{"deleted", func() { must(t, os.Remove(path)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.breaks()
			if err := r.Reload(); err == nil {
				t.Fatal("Reload succeeded on a broken key file")
			}
			if r.Keyring().Primary().ID() != good.ID() {
				t.Fatal("a failed reload replaced the keys in use")
			}
		})
	}
	if len(outcomes) != 3 || outcomes[0] == nil || outcomes[2] == nil {
		t.Fatalf("the observer saw %v, want three failures", outcomes)
	}
	if failures := logs.events(t, "key reload failed; keeping the keys in use"); len(failures) != 3 {
		t.Fatalf("%d failure log lines, want 3", len(failures))
	}
	if strings.Contains(logs.String(), garbage) {
		t.Fatal("the key file's content appears in the log")
	}

	must(t, os.WriteFile(path, []byte(next.Encode()), 0o600))
	if err := r.Reload(); err != nil || r.Keyring().Primary().ID() != next.ID() {
		t.Fatalf("Reload after the file is fixed = %v, primary %s; want %s", err, r.Keyring().Primary().ID(), next.ID())
	}
	if outcomes[len(outcomes)-1] != nil {
		t.Fatal("the observer was not told of the successful reload")
	}
}

// TestEveryLoadIsRecorded: the first load and each reload, changed,
// unchanged or failed, are told to the observer given to NewReloader, with
// the keyring in use after them, and audit-logged, one line each.
func TestEveryLoadIsRecorded(t *testing.T) {
	first, second := testkeys.New(t), testkeys.New(t)
	path := writeFile(t, first.Encode())
	type event struct {
		primary string
		failed  bool
	}
	var events []event
	r, logs := newReloaderForFile(t, path, func(current *fernet.Keyring, err error) {
		events = append(events, event{current.Primary().ID(), err != nil})
	})
	must(t, r.Reload())
	must(t, os.WriteFile(path, []byte(second.Encode()), 0o600))
	must(t, r.Reload())
	must(t, os.WriteFile(path, []byte("not a key"), 0o600))
	if r.Reload() == nil {
		t.Fatal("Reload succeeded on a broken key file")
	}
	want := []event{{first.ID(), false}, {first.ID(), false}, {second.ID(), false}, {second.ID(), true}}
	if !slices.Equal(events, want) {
		t.Errorf("the observer saw %v, want %v (loaded, unchanged, changed, failed)", events, want)
	}
	for _, msg := range []string{"keys loaded", "keys reloaded, unchanged", "keys changed", "key reload failed; keeping the keys in use"} {
		if lines := logs.events(t, msg); len(lines) != 1 || lines[0]["audit"] != true {
			t.Errorf("audit lines %q: %v, want one", msg, lines)
		}
	}
}

func TestReloadOfUnchangedKeysChangesNothing(t *testing.T) {
	key := testkeys.New(t)
	r, logs := newReloaderForFile(t, writeFile(t, key.Encode()), nil)
	before := r.Keyring()
	if err := r.Reload(); err != nil || r.Keyring() != before {
		t.Fatalf("Reload = %v; the keyring must stay the same object when the keys did not change", err)
	}
	if changed := logs.events(t, "keys changed"); len(changed) != 0 {
		t.Fatalf("audit log says keys changed: %v", changed)
	}
	if loaded := logs.events(t, "keys loaded"); len(loaded) != 1 || loaded[0]["primary_key_id"] != key.ID() {
		t.Fatalf("start-up audit event = %v, want one naming %s", loaded, key.ID())
	}
	// Every load is audited, the unchanged ones included, at info level.
	unchanged := logs.events(t, "keys reloaded, unchanged")
	if len(unchanged) != 1 || unchanged[0]["audit"] != true || unchanged[0]["level"] != "INFO" || unchanged[0]["primary_key_id"] != key.ID() {
		t.Fatalf("audit events of an unchanged reload = %v, want one at INFO naming %s", unchanged, key.ID())
	}
}

// TestReloadDropsTheReplacedKeys: once no call uses them, the keys a reload
// replaced are unreachable, so the collector can take them.
func TestReloadDropsTheReplacedKeys(t *testing.T) {
	first, second := testkeys.New(t), testkeys.New(t)
	path := writeFile(t, first.Encode())
	r, _ := newReloaderForFile(t, path, nil)
	dropped := make(chan struct{})
	runtime.AddCleanup(r.Keyring(), func(ch chan struct{}) { close(ch) }, dropped)
	must(t, os.WriteFile(path, []byte(second.Encode()), 0o600))
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		select {
		case <-dropped:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the replaced keyring is still reachable after a reload")
		}
	}
}

// TestPublicKeyIDHidesDerivedKeys: a derived key's id would let anyone who
// sees it test guesses of the secret, so it is replaced; plain keys keep
// theirs.
func TestPublicKeyIDHidesDerivedKeys(t *testing.T) {
	plain := testkeys.New(t)
	src := source(map[string]string{"DJANGO_ENCRYPTION_KEY": plain.Encode(), "OLD_DJANGO_ENCRYPTION_KEY": "old django secret"})
	src.DecryptOnlyDerivation = DerivationDjangoFernetFields
	r := newReloader(t, src, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if got := r.PublicKeyID(r.Keyring().Primary().ID()); got != plain.ID() {
		t.Errorf("a plain key's public id = %s, want its id %s", got, plain.ID())
	}
	if got := r.PublicKeyID(r.Keyring().DecryptOnly()[0].ID()); got != DerivedKeyLabel {
		t.Errorf("a derived key's public id = %s, want %s", got, DerivedKeyLabel)
	}
}

// TestWatchFollowsOneRenameOfTheKeyList: promoting B and keeping A is one
// rename of the list file, so no reload ever sees B alone.
func TestWatchFollowsOneRenameOfTheKeyList(t *testing.T) {
	a, b := testkeys.New(t), testkeys.New(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "keys")
	must(t, os.WriteFile(list, []byte(a.Encode()+"\n"+b.Encode()+"\n"), 0o600))
	src := source(map[string]string{"FERNET_KEYS_FILE": list})
	src.ListVar = "FERNET_KEYS"
	r := newReloader(t, src, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	watch(t, r)
	must(t, os.WriteFile(filepath.Join(dir, "keys.new"), []byte(b.Encode()+"\n"+a.Encode()+"\n"), 0o600))
	must(t, os.Rename(filepath.Join(dir, "keys.new"), list))
	waitForPrimary(t, r, b)
	if got := ids(r.Keyring().DecryptOnly()); len(got) != 1 || got[0] != a.ID() {
		t.Fatalf("decrypt-only keys after the rename = %v, want A (%s)", got, a.ID())
	}
}

// TestStoppedWatchReloadsNothing: once stop has returned, the watch has
// ended; a change after it is not read.
func TestStoppedWatchReloadsNothing(t *testing.T) {
	first, second := testkeys.New(t), testkeys.New(t)
	path := writeFile(t, first.Encode())
	loads := 0
	r, _ := newReloaderForFile(t, path, func(*fernet.Keyring, error) { loads++ })
	stop, err := r.Watch()
	if err != nil {
		t.Fatal(err)
	}
	stop()
	must(t, os.WriteFile(path, []byte(second.Encode()), 0o600))
	time.Sleep(3 * settleTime)
	if loads != 1 || r.Keyring().Primary().ID() != first.ID() {
		t.Fatalf("%d loads after stop, primary %s; want the first load only", loads, r.Keyring().Primary().ID())
	}
}

// TestWatchIgnoresOtherFilesInTheDirectory: a busy neighbour of the key
// file (an app's SQLite database, written all the time) neither holds a
// key change back nor causes reloads of its own.
func TestWatchIgnoresOtherFilesInTheDirectory(t *testing.T) {
	first, second := testkeys.New(t), testkeys.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	must(t, os.WriteFile(path, []byte(first.Encode()), 0o600))
	r, logs := newReloaderForFile(t, path, nil)
	watch(t, r)

	// The neighbour is written more often than settleTime, until the test ends.
	done := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(settleTime / 10):
			}
			if err := os.WriteFile(filepath.Join(dir, "app.db"), []byte{byte(i)}, 0o600); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(done); <-busy }()

	time.Sleep(3 * settleTime)
	must(t, os.WriteFile(path, []byte(second.Encode()), 0o600))
	deadline := time.Now().Add(10 * settleTime)
	for r.Keyring().Primary().ID() != second.ID() {
		if time.Now().After(deadline) {
			t.Fatalf("the key change is not loaded %s after it, while another file in the directory is busy", 10*settleTime)
		}
		time.Sleep(settleTime / 10)
	}
	if unchanged := logs.events(t, "keys reloaded, unchanged"); len(unchanged) != 0 {
		t.Errorf("%d reloads of unchanged keys: the other file's writes caused reloads", len(unchanged))
	}
}
