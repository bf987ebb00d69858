package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/client"
	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	"github.com/fernet-sidecar/fernet-sidecar/internal/testkeys"
	"github.com/fernet-sidecar/fernet-sidecar/server"
)

// TestMethods calls every method over both transports against the real
// server, and checks the tokens against the engine, as Python would read
// them.
func TestMethods(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport.name, func(t *testing.T) {
			s := startSidecar(t, transport.addr(t), server.DefaultLimits)
			c := dial(t, s.addr)
			ctx := testContext(t)
			primary := fernet.NewKeyring(s.primary)

			t.Run("Encrypt", func(t *testing.T) {
				before := now()
				enc, err := c.Encrypt(ctx, []byte("JBSWY3DPEHPK3PXP"))
				if err != nil {
					t.Fatal(err)
				}
				if enc.KeyID != s.primary.ID() {
					t.Errorf("KeyID = %s, want the primary's %s", enc.KeyID, s.primary.ID())
				}
				opened, err := primary.Decrypt(enc.Token)
				if err != nil || string(opened.Plaintext) != "JBSWY3DPEHPK3PXP" || opened.Timestamp < before || opened.Timestamp > now() {
					t.Fatalf("the token opens outside to %+v, %v", opened, err)
				}
			})

			t.Run("Decrypt", func(t *testing.T) {
				tests := []struct {
					name           string
					token          string
					opts           []client.DecryptOption
					keyID          string
					timestamp      uint64
					needsReEncrypt bool
				}{
					{"primary key", testkeys.Token(t, s.primary, "secret", 1_600_000_000), nil, s.primary.ID(), 1_600_000_000, false},
					{"old key", testkeys.Token(t, s.old, "secret", 1_600_000_001), nil, s.old.ID(), 1_600_000_001, true},
					{"with a TTL", testkeys.Token(t, s.primary, "secret", now()), []client.DecryptOption{client.WithTTL(60e9)}, s.primary.ID(), now(), false},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						dec, err := c.Decrypt(ctx, tt.token, tt.opts...)
						if err != nil {
							t.Fatal(err)
						}
						if string(dec.Plaintext) != "secret" || dec.KeyID != tt.keyID || dec.NeedsReEncrypt != tt.needsReEncrypt {
							t.Errorf("Decrypt = %+v", dec)
						}
						// A second can pass between making the token and now().
						if dec.Timestamp != tt.timestamp && dec.Timestamp != tt.timestamp-1 {
							t.Errorf("Timestamp = %d, want %d", dec.Timestamp, tt.timestamp)
						}
					})
				}
			})

			t.Run("ReEncrypt", func(t *testing.T) {
				underOld := testkeys.Token(t, s.old, "secret", 1_600_000_000)
				rotated, err := c.ReEncrypt(ctx, underOld)
				if err != nil {
					t.Fatal(err)
				}
				opened, err := primary.Decrypt(rotated.Token)
				if !rotated.Changed || rotated.KeyID != s.primary.ID() || err != nil ||
					string(opened.Plaintext) != "secret" || opened.Timestamp != 1_600_000_000 {
					t.Fatalf("ReEncrypt = %+v, opens to %+v, %v; want the same plaintext and timestamp under the primary", rotated, opened, err)
				}
				again, err := c.ReEncrypt(ctx, rotated.Token)
				if err != nil || again.Changed || again.Token != rotated.Token {
					t.Fatalf("ReEncrypt of a canonical primary token = %+v, %v; want it back unchanged", again, err)
				}
			})

			t.Run("Status", func(t *testing.T) {
				status, err := c.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if status.PrimaryKeyID != s.primary.ID() || !slices.Equal(status.DecryptOnlyKeyIDs, []string{s.old.ID()}) || status.Version != "client-test" {
					t.Fatalf("Status = %+v", status)
				}
			})

			t.Run("EncryptBatch", func(t *testing.T) {
				plaintexts := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte("x"), 70_000), []byte("d")}
				results, err := c.EncryptBatch(ctx, plaintexts)
				if err != nil {
					t.Fatal(err)
				}
				if len(results) != len(plaintexts) {
					t.Fatalf("%d results for %d plaintexts", len(results), len(plaintexts))
				}
				for i, r := range results {
					if i == 2 {
						if r.Err == nil || r.Token != "" {
							t.Errorf("item 2 (70000 bytes) = %+v, want ErrPlaintextTooLarge", r)
						}
						continue
					}
					opened, err := primary.Decrypt(r.Token)
					if r.Err != nil || r.KeyID != s.primary.ID() || err != nil || !bytes.Equal(opened.Plaintext, plaintexts[i]) {
						t.Errorf("item %d = %+v, opens to %q, %v", i, r, opened.Plaintext, err)
					}
				}
			})

			t.Run("DecryptBatch", func(t *testing.T) {
				tokens := []string{
					testkeys.Token(t, s.primary, "zero", now()),
					"not a token",
					testkeys.Token(t, s.old, "two", now()),
					testkeys.Token(t, s.primary, "three", 1_000),
				}
				results, err := c.DecryptBatch(ctx, tokens, client.WithTTL(3600e9))
				if err != nil {
					t.Fatal(err)
				}
				want := []struct {
					plaintext string
					keyID     string
					err       error
				}{
					{"zero", s.primary.ID(), nil},
					{"", "", client.ErrMalformed},
					{"two", s.old.ID(), nil},
					{"", "", client.ErrExpired},
				}
				checkResults(t, len(results), len(want), func(i int) string {
					r, w := results[i], want[i]
					if string(r.Plaintext) != w.plaintext || r.KeyID != w.keyID || !errorIs(r.Err, w.err) || r.NeedsReEncrypt != (w.keyID == s.old.ID()) {
						return fmt.Sprintf("%+v, want %+v", r, w)
					}
					return ""
				})
			})

			t.Run("ReEncryptBatch", func(t *testing.T) {
				canonical := testkeys.Token(t, s.primary, "zero", 1_600_000_000)
				tokens := []string{canonical, testkeys.Token(t, s.old, "one", 1_600_000_001), "gAAAAA"}
				results, err := c.ReEncryptBatch(ctx, tokens)
				if err != nil {
					t.Fatal(err)
				}
				if len(results) != 3 {
					t.Fatalf("%d results for 3 tokens", len(results))
				}
				if r := results[0]; r.Err != nil || r.Changed || r.Token != canonical {
					t.Errorf("item 0 = %+v, want unchanged", r)
				}
				opened, err := primary.Decrypt(results[1].Token)
				if r := results[1]; r.Err != nil || !r.Changed || err != nil || string(opened.Plaintext) != "one" || opened.Timestamp != 1_600_000_001 {
					t.Errorf("item 1 = %+v, opens to %+v, %v", r, opened, err)
				}
				if r := results[2]; !errorIs(r.Err, client.ErrMalformed) || r.Token != "" {
					t.Errorf("item 2 = %+v, want ErrMalformed", r)
				}
			})

			t.Run("empty batches make no call", func(t *testing.T) {
				if r, err := c.EncryptBatch(ctx, nil); err != nil || len(r) != 0 {
					t.Errorf("EncryptBatch(nil) = %v, %v", r, err)
				}
				if r, err := c.DecryptBatch(ctx, []string{}); err != nil || len(r) != 0 {
					t.Errorf("DecryptBatch([]) = %v, %v", r, err)
				}
				if r, err := c.ReEncryptBatch(ctx, nil); err != nil || len(r) != 0 {
					t.Errorf("ReEncryptBatch(nil) = %v, %v", r, err)
				}
			})
		})
	}
}

// errorIs is errors.Is, with a nil want meaning no error.
func errorIs(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// failedWith is checkResults' problem with a result whose error, err,
// should be sentinel: "" if it is.
func failedWith(result any, err, sentinel error) string {
	if !errors.Is(err, sentinel) {
		return fmt.Sprintf("%+v, want %v", result, sentinel)
	}
	return ""
}

func checkResults(t *testing.T, got, want int, check func(i int) string) {
	t.Helper()
	if got != want {
		t.Fatalf("%d results, want %d", got, want)
	}
	for i := range want {
		if problem := check(i); problem != "" {
			t.Errorf("item %d = %s", i, problem)
		}
	}
}

func TestDialTargets(t *testing.T) {
	for _, target := range []string{"", "localhost", "http://localhost:50051", "unix://relative.sock", "unix:relative.sock"} {
		if c, err := client.Dial(target); err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded, want an error", target)
		}
	}
	for _, target := range []string{"localhost:50051", "127.0.0.1:50051", "[::1]:50051", "unix:///run/fernet/fernet.sock"} {
		c, err := client.Dial(target)
		if err != nil {
			t.Errorf("Dial(%q): %v", target, err)
			continue
		}
		c.Close()
	}
}
