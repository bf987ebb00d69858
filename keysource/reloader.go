package keysource

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// settleTime lets a burst of file events (Kubernetes swaps a Secret with a
// symlink dance of several steps) end before the keys are read once.
const settleTime = 200 * time.Millisecond

// Current is the key set in use. A Reloader replaces it whole, and callers
// take one Keyring() per call, so a reload never mixes two key sets within
// a call.
type Current struct {
	keyring atomic.Pointer[fernet.Keyring]
	// derived holds the ids of the derived keys in use (Loaded.Derived).
	derived atomic.Pointer[map[string]bool]
}

// NewCurrent holds the keys of a first load, which a Reloader then
// records.
func NewCurrent(loaded Loaded) *Current {
	c := &Current{}
	c.set(loaded)
	return c
}

func (c *Current) set(loaded Loaded) {
	c.derived.Store(&loaded.Derived)
	c.keyring.Store(loaded.Keyring)
}

// Keyring is the key set in use now.
func (c *Current) Keyring() *fernet.Keyring { return c.keyring.Load() }

// DerivedKeyLabel is what stands for a derived key where an id would
// confirm a guess: the id of a key derived from a secret with public
// parameters lets anyone who sees it test candidate secrets offline
// (Django's SECRET_KEY also signs sessions). Metrics and logs show this
// instead.
const DerivedKeyLabel = "derived"

// PublicKeyID is id, or DerivedKeyLabel for the id of a derived key in
// use.
func (c *Current) PublicKeyID(id string) string {
	return publicKeyID(id, *c.derived.Load())
}

func publicKeyID(id string, derived map[string]bool) string {
	if derived[id] {
		return DerivedKeyLabel
	}
	return id
}

// Reloader reloads its Current from its Source. It is the one place where
// each load of the keys is recorded, the first one included: audit-logged,
// and told to the observer it was made with.
type Reloader struct {
	*Current
	source  Source
	logger  *slog.Logger
	observe func(current *fernet.Keyring, err error)
	// reloading serializes reloads, so a slow read cannot overwrite a
	// newer one.
	reloading sync.Mutex
}

// NewReloader records the first load, of current from source, and reloads
// current from source when told to. observe, when not nil, is told the
// outcome of each load: the keyring in use after it, and the error of a
// failed reload.
func NewReloader(source Source, current *Current, logger *slog.Logger, observe func(current *fernet.Keyring, err error)) *Reloader {
	r := &Reloader{Current: current, source: source, logger: logger, observe: observe}
	r.record("keys loaded", current.Keyring(), nil, keyringAttrs("", current.Keyring(), *current.derived.Load()))
	return r
}

// Reload reads the keys again. On failure the keys in use stay, and the
// error says why (never with a key in it).
func (r *Reloader) Reload() error {
	r.reloading.Lock()
	defer r.reloading.Unlock()
	before, derivedBefore := r.Keyring(), *r.derived.Load()
	loaded, err := r.source.Load()
	if err != nil {
		r.record("key reload failed; keeping the keys in use", before, err, append([]any{"error", err.Error()}, keyringAttrs("", before, derivedBefore)...))
		return err
	}
	after := loaded.Keyring
	if sameKeys(before, after) {
		r.record("keys reloaded, unchanged", before, nil, keyringAttrs("", before, derivedBefore))
		return nil
	}
	r.set(loaded)
	attrs := []any{"primary_changed", before.Primary().ID() != after.Primary().ID()}
	attrs = append(attrs, keyringAttrs("before_", before, derivedBefore)...)
	attrs = append(attrs, keyringAttrs("after_", after, loaded.Derived)...)
	r.record("keys changed", after, nil, attrs)
	return nil
}

// record writes the audit line of a load, a failed one at warning level,
// and tells the observer: current is the keyring in use after it.
func (r *Reloader) record(msg string, current *fernet.Keyring, err error, attrs []any) {
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	r.logger.Log(context.Background(), level, msg, append([]any{"audit", true}, attrs...)...)
	if r.observe != nil {
		r.observe(current, err)
	}
}

// Watch reloads whenever a key file (a *_FILE path, or the --dev key file)
// changes, until stop is called; stop returns once the watch has ended. It
// watches the files' directories, because Kubernetes and editors replace a
// file rather than write to it, and the files themselves, because a file
// bind-mounted on its own (Docker and Compose secrets) changes in place
// and its directory sees nothing. It returns once the watches are in
// place, so that no change made after it returns is missed.
func (r *Reloader) Watch() (stop func(), err error) {
	files := r.source.files()
	if len(files) == 0 {
		return func() {}, nil
	}
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch key files: %w", err)
	}
	var dirs []string
	for _, file := range files {
		dirs = append(dirs, filepath.Dir(file))
	}
	slices.Sort(dirs)
	for _, dir := range slices.Compact(dirs) {
		if err := watcher.Add(dir); err != nil {
			watcher.Close()
			return nil, fmt.Errorf("watch key directory %s: %w", dir, err)
		}
	}
	watchFiles(watcher, files)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		r.reloadOnEvents(ctx, watcher, files)
	}()
	return func() { cancel(); <-ended }, nil
}

// watchFiles watches each file itself. A file replaced by a new one loses
// its watch with its old inode, so this runs again after every reload; a
// file missing for now is caught by its directory's watch.
func watchFiles(watcher *fsnotify.Watcher, files []string) {
	for _, file := range files {
		_ = watcher.Add(file)
	}
}

func (r *Reloader) reloadOnEvents(ctx context.Context, watcher *fsnotify.Watcher, files []string) {
	defer watcher.Close()
	settle := time.NewTimer(settleTime)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case event := <-watcher.Events:
			if aboutKeyFiles(event, files) {
				settle.Reset(settleTime)
			}
		case err := <-watcher.Errors:
			r.logger.Warn("watching key files", "error", err.Error())
		case <-settle.C:
			_ = r.Reload() // reported and logged by Reload
			watchFiles(watcher, files)
		}
	}
}

// aboutKeyFiles reports whether event may have changed a key file: it
// names one, or is Kubernetes' swap of a mounted Secret, whose entries
// (..data, ..data_tmp, ..2026_11_22_...) start with "..". Anything else in
// the directories, a SQLite database beside the keys say, would otherwise
// restart the settle time on every write and hold a key change back.
func aboutKeyFiles(event fsnotify.Event, files []string) bool {
	name := filepath.Clean(event.Name)
	for _, file := range files {
		if filepath.Clean(file) == name {
			return true
		}
	}
	return strings.HasPrefix(filepath.Base(name), "..")
}

func sameKeys(a, b *fernet.Keyring) bool {
	return slices.Equal(keyIDs(a), keyIDs(b))
}

func keyIDs(keyring *fernet.Keyring) []string {
	ids := []string{keyring.Primary().ID()}
	for _, key := range keyring.DecryptOnly() {
		ids = append(ids, key.ID())
	}
	return ids
}

// keyringAttrs describes a keyring by key ids only, derived ones hidden
// (DerivedKeyLabel).
func keyringAttrs(prefix string, keyring *fernet.Keyring, derived map[string]bool) []any {
	ids := keyIDs(keyring)
	for i, id := range ids {
		ids[i] = publicKeyID(id, derived)
	}
	return []any{prefix + "primary_key_id", ids[0], prefix + "decrypt_only_key_ids", ids[1:]}
}
