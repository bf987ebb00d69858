package rotation

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The checkpoint is a small JSON file, replaced atomically after each
// committed batch. It is only a shortcut: every batch is idempotent (a token
// already under the primary key comes back unchanged and is not written),
// so a lost or stale checkpoint costs time, never correctness. A crash
// between a commit and the file's replacement redoes one batch, which
// writes nothing. A file, rather than a table in the app's database, keeps
// the tool from needing DDL rights or leaving anything in the schema.

// State is what a checkpoint file holds.
type State struct {
	Version int `json:"version"`
	// Database is Database.Fingerprint: the checkpoint of one database
	// must not skip rows of another.
	Database string `json:"database"`
	Table    string `json:"table"`
	PK       string `json:"pk"`
	Column   string `json:"column"`
	Where    string `json:"where"`
	// EncryptPlaintext changes what is written, so a resume must not
	// change it: rows before the checkpoint would miss the difference.
	EncryptPlaintext bool `json:"encrypt_plaintext"`
	// LegacyPlaintext is the shape encrypted, with EncryptPlaintext.
	LegacyPlaintext string `json:"legacy_plaintext,omitempty"`
	// Shard is "i/n" for a sharded run: each shard has its own
	// checkpoint, and one must not resume another's.
	Shard string `json:"shard,omitempty"`
	// PrimaryKeyID is the sidecar's primary key when the checkpoint was
	// written: the rows before LastPK are under that key, which says
	// nothing of another one. Empty in checkpoints of earlier versions.
	PrimaryKeyID string `json:"primary_key_id,omitempty"`
	// LastPK is the primary key of the last row of the last committed batch.
	LastPK  StoredValue `json:"last_pk"`
	Scanned int64       `json:"rows_scanned"`
	Updated time.Time   `json:"updated"`
}

const stateVersion = 1

// StoredValue is a primary-key Value in JSON, with its type.
type StoredValue struct {
	Int   *string `json:"int,omitempty"` // a string, so JSON keeps all 64 bits
	Text  *string `json:"text,omitempty"`
	Bytes *string `json:"bytes,omitempty"` // base64
}

func storeValue(v Value) StoredValue {
	switch v := v.v.(type) {
	case int64:
		s := strconv.FormatInt(v, 10)
		return StoredValue{Int: &s}
	case string:
		return StoredValue{Text: &v}
	case []byte:
		s := base64.StdEncoding.EncodeToString(v)
		return StoredValue{Bytes: &s}
	}
	return StoredValue{}
}

func (s StoredValue) value() (Value, error) {
	switch {
	case s.Int != nil:
		i, err := strconv.ParseInt(*s.Int, 10, 64)
		return Value{i}, err
	case s.Text != nil:
		return Value{*s.Text}, nil
	case s.Bytes != nil:
		b, err := base64.StdEncoding.DecodeString(*s.Bytes)
		return Value{b}, err
	}
	return Value{}, errors.New("no primary key value")
}

// Checkpoint is where a job keeps its State.
type Checkpoint struct {
	Path string
}

// Load reads the checkpoint; ok is false when there is none.
func (c Checkpoint) Load() (s State, ok bool, err error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, false, fmt.Errorf("checkpoint %s: %w", c.Path, err)
	}
	if s.Version != stateVersion {
		return State{}, false, fmt.Errorf("checkpoint %s: version %d, want %d", c.Path, s.Version, stateVersion)
	}
	return s, true, nil
}

// Save replaces the checkpoint atomically: a temporary file in the same
// directory, synced, then renamed over the old one, then the directory
// synced, so a crash leaves either the old or the new checkpoint whole.
func (c Checkpoint) Save(s State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.Path)
	tmp, err := os.CreateTemp(dir, filepath.Base(c.Path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.Path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every filesystem syncs directories
		d.Close()
	}
	return nil
}

// Remove deletes the checkpoint once the walk is complete, so that a rerun
// walks the whole table again (and, being idempotent, writes nothing).
func (c Checkpoint) Remove() error {
	err := os.Remove(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// saver writes checkpoints in the background, one at a time, so that the
// next batch's writes need not wait for a file's fsync. A checkpoint that
// lags a batch behind is safe: a resume from it redoes that batch, which
// writes nothing.
type saver struct {
	cp      *Checkpoint
	pending chan error // the save in flight; nil when none
}

// save waits for the save in flight, then starts saving st.
func (s *saver) save(st State) error {
	if err := s.wait(); err != nil {
		return err
	}
	done := make(chan error, 1)
	s.pending = done
	go func() { done <- s.cp.Save(st) }()
	return nil
}

// wait waits for the save in flight, if any.
func (s *saver) wait() error {
	if s.pending == nil {
		return nil
	}
	err := <-s.pending
	s.pending = nil
	if err != nil {
		return fmt.Errorf("saving the checkpoint (the batches committed; a rerun redoes them harmlessly): %w", err)
	}
	return nil
}
