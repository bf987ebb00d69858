package keysource

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
)

// settleTime lets a burst of file events (Kubernetes swaps a Secret with a
// symlink dance of several steps) end before the keys are read once.
const settleTime = 200 * time.Millisecond

// Reloader holds the current keyring and replaces it, whole, when the keys
// change. Callers take one Keyring() per call, so a reload never mixes two
// key sets within a call.
type Reloader struct {
	source  Source
	logger  *slog.Logger
	current atomic.Pointer[fernet.Keyring]
	// derived holds the ids of the derived keys in use (Loaded.Derived).
	derived atomic.Pointer[map[string]bool]
	// reloading serializes reloads, so a slow read cannot overwrite a
	// newer one.
	reloading sync.Mutex

	// OnReload, when set, is told the outcome of every reload: the keyring
	// now in use, and the error of a failed attempt. Set it before Watch.
	OnReload func(current *fernet.Keyring, err error)
}

// NewReloader loads the keys once; an error here means the process must not
// start. The load is audit-logged.
func NewReloader(source Source, logger *slog.Logger) (*Reloader, Loaded, error) {
	loaded, err := source.Load()
	if err != nil {
		return nil, Loaded{}, err
	}
	r := &Reloader{source: source, logger: logger}
	r.current.Store(loaded.Keyring)
	r.derived.Store(&loaded.Derived)
	logger.Info("keys loaded", append([]any{"audit", true}, keyringAttrs("", loaded.Keyring)...)...)
	return r, loaded, nil
}

// Keyring is the key set in use now.
func (r *Reloader) Keyring() *fernet.Keyring { return r.current.Load() }

// DerivedKeyLabel is what stands for a derived key where an id would
// confirm a guess: the id of a key derived from a secret with public
// parameters lets anyone who sees it test candidate secrets offline
// (Django's SECRET_KEY also signs sessions). Metrics show this instead.
const DerivedKeyLabel = "derived"

// PublicKeyID is key's id, or DerivedKeyLabel for a derived key in use.
func (r *Reloader) PublicKeyID(key *fernet.Key) string {
	if (*r.derived.Load())[key.ID()] {
		return DerivedKeyLabel
	}
	return key.ID()
}

// Reload reads the keys again. On failure the keys in use stay, and the
// error says why (never with a key in it).
func (r *Reloader) Reload() error {
	r.reloading.Lock()
	defer r.reloading.Unlock()
	before := r.current.Load()
	loaded, err := r.source.Load()
	if err != nil {
		r.logger.Warn("key reload failed; keeping the keys in use",
			append([]any{"audit", true, "error", err.Error()}, keyringAttrs("", before)...)...)
		r.report(before, err)
		return err
	}
	after := loaded.Keyring
	if sameKeys(before, after) {
		r.logger.Info("keys reloaded, unchanged", append([]any{"audit", true}, keyringAttrs("", before)...)...)
		r.report(before, nil)
		return nil
	}
	r.derived.Store(&loaded.Derived)
	r.current.Store(after)
	attrs := []any{"audit", true, "primary_changed", before.Primary().ID() != after.Primary().ID()}
	attrs = append(attrs, keyringAttrs("before_", before)...)
	attrs = append(attrs, keyringAttrs("after_", after)...)
	r.logger.Info("keys changed", attrs...)
	r.report(after, nil)
	return nil
}

func (r *Reloader) report(current *fernet.Keyring, err error) {
	if r.OnReload != nil {
		r.OnReload(current, err)
	}
}

// Watch reloads whenever a key file (a *_FILE path, or the --dev key file)
// changes, until ctx ends. It watches the files' directories, because
// Kubernetes and editors replace a file rather than write to it, and the
// files themselves, because a file bind-mounted on its own (Docker and
// Compose secrets) changes in place and its directory sees nothing. It
// returns once the watches are in place, so that no change made after it
// returns is missed.
func (r *Reloader) Watch(ctx context.Context) error {
	files := r.source.files()
	if len(files) == 0 {
		return nil
	}
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch key files: %w", err)
	}
	var dirs []string
	for _, file := range files {
		dirs = append(dirs, filepath.Dir(file))
	}
	slices.Sort(dirs)
	for _, dir := range slices.Compact(dirs) {
		if err := watcher.Add(dir); err != nil {
			watcher.Close()
			return fmt.Errorf("watch key directory %s: %w", dir, err)
		}
	}
	watchFiles(watcher, files)
	go r.reloadOnEvents(ctx, watcher, files)
	return nil
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
		case <-watcher.Events:
			settle.Reset(settleTime)
		case err := <-watcher.Errors:
			r.logger.Warn("watching key files", "error", err.Error())
		case <-settle.C:
			_ = r.Reload() // reported and logged by Reload
			watchFiles(watcher, files)
		}
	}
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

// keyringAttrs describes a keyring by key ids only.
func keyringAttrs(prefix string, keyring *fernet.Keyring) []any {
	ids := keyIDs(keyring)
	return []any{prefix + "primary_key_id", ids[0], prefix + "decrypt_only_key_ids", ids[1:]}
}
