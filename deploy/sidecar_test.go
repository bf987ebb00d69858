package deploy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// buildDir holds the binary built the way the Dockerfile builds it, shared
// by every test in the package and removed by TestMain.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fernet-sidecar-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	removeContainerImages()
	os.RemoveAll(dir)
	os.Exit(code)
}

// imageVersion is the VERSION build argument the tests build with; the
// binary's --version must print it.
const imageVersion = "deploy-test-1.2.3"

var imageBuild struct {
	once sync.Once
	bin  string
	out  string
	err  error
}

// imageBinary returns the sidecar built by the Dockerfile's own build
// command (see buildLikeDockerfile), built once per test run. Every test
// here runs that binary, so what they check is what the image contains.
func imageBinary(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	imageBuild.once.Do(func() {
		df, err := parseDockerfileAt(filepath.Join(root, "Dockerfile"))
		if err != nil {
			imageBuild.err = err
			return
		}
		imageBuild.bin, imageBuild.out, imageBuild.err = buildLikeDockerfile(root, df, buildDir)
	})
	if imageBuild.err != nil {
		t.Fatalf("build the sidecar as the Dockerfile does: %v\n%s", imageBuild.err, imageBuild.out)
	}
	return imageBuild.bin
}

// newKey returns a key as Python's Fernet.generate_key() makes it.
func newKey(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(raw)
}

// keyID is the key id as README.md defines it: lowercase hex of the first
// 8 bytes of SHA-256 over the 32 raw key bytes. Computed here, not with the
// fernet package, so that the documented formula is what is checked.
func keyID(t *testing.T, key string) string {
	t.Helper()
	raw, err := base64.URLEncoding.DecodeString(strings.TrimSpace(key))
	if err != nil || len(raw) != 32 {
		t.Fatalf("not a Fernet key: %v", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// fernetEncrypt makes a token per the Fernet spec at the given time, so
// that a test can hold a token under a key the sidecar has only as an old
// key, with a timestamp it chose.
func fernetEncrypt(t *testing.T, key string, plaintext []byte, timestamp uint64) string {
	t.Helper()
	raw, err := base64.URLEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("not a Fernet key: %v", err)
	}
	block, err := aes.NewCipher(raw[16:])
	if err != nil {
		t.Fatal(err)
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	padded := append(append([]byte(nil), plaintext...), strings.Repeat(string(rune(pad)), pad)...)
	token := make([]byte, 1+8+aes.BlockSize, 1+8+aes.BlockSize+len(padded)+sha256.Size)
	token[0] = 0x80
	binary.BigEndian.PutUint64(token[1:9], timestamp)
	iv := token[9:25]
	if _, err := rand.Read(iv); err != nil {
		t.Fatal(err)
	}
	ciphertext := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ciphertext, padded)
	token = append(token, ciphertext...)
	mac := hmac.New(sha256.New, raw[:16])
	mac.Write(token)
	return base64.URLEncoding.EncodeToString(mac.Sum(token))
}

// fernetDecrypt opens a token per the Fernet spec (no TTL), to check a
// token the sidecar made without asking the sidecar.
func fernetDecrypt(t *testing.T, key, token string) (plaintext []byte, timestamp uint64) {
	t.Helper()
	raw, err := base64.URLEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("not a Fernet key: %v", err)
	}
	data, err := base64.URLEncoding.DecodeString(token)
	if err != nil || len(data) < 1+8+aes.BlockSize+aes.BlockSize+sha256.Size || data[0] != 0x80 {
		t.Fatalf("not a Fernet token (%v): %q", err, token)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	mac := hmac.New(sha256.New, raw[:16])
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		t.Fatalf("token %q does not verify under the key", token)
	}
	block, err := aes.NewCipher(raw[16:])
	if err != nil {
		t.Fatal(err)
	}
	ciphertext := body[25:]
	if len(ciphertext)%aes.BlockSize != 0 {
		t.Fatalf("token %q: ciphertext not in whole blocks", token)
	}
	padded := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, body[9:25]).CryptBlocks(padded, ciphertext)
	pad := int(padded[len(padded)-1])
	if pad < 1 || pad > aes.BlockSize {
		t.Fatalf("token %q: bad padding", token)
	}
	return padded[:len(padded)-pad], binary.BigEndian.Uint64(body[1:9])
}
