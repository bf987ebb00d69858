package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"

	"github.com/fernet-sidecar/fernet-sidecar/internal/sidecartest"
	"github.com/fernet-sidecar/fernet-sidecar/totp"
)

const (
	recipesStart = "<!-- grpcurl-recipes:start -->"
	recipesEnd   = "<!-- grpcurl-recipes:end -->"
	// recipePlaintext is the string the Encrypt recipe encrypts.
	recipePlaintext = "JBSWY3DPEHPK3PXP"
)

// recipeFiles hold the recipes, one session: the README's short one, which
// docs/grpcurl.md continues in the same shell.
var recipeFiles = []string{"README.md", "docs/grpcurl.md"}

// recipeBlocks returns the ```sh blocks between the markers of the
// recipeFiles, in order.
func recipeBlocks(t *testing.T, root string) []string {
	t.Helper()
	var blocks []string
	for _, name := range recipeFiles {
		text, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(string(text), recipesStart)
		if ok {
			section, _, ok = strings.Cut(section, recipesEnd)
		}
		if !ok {
			t.Fatalf("%s lacks the %s ... %s section", name, recipesStart, recipesEnd)
		}
		blocks = append(blocks, shBlocks(section)...)
	}
	return blocks
}

// shBlocks returns the bodies of the ```sh blocks in markdown.
func shBlocks(markdown string) []string {
	var blocks []string
	for _, m := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```$").FindAllStringSubmatch(markdown, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// recipeKind names a block by the call it makes, so that every block is
// checked for what it should print, and a new block needs a new check.
func recipeKind(block string) string {
	for _, k := range []struct{ marker, kind string }{
		// In this order: the first marker a block holds names it.
		{"/CreateTOTP", "createtotp"},
		{"last_counter", "replayed"},
		{"/VerifyTOTP", "verifytotp"},
		{" list", "list"},
		{"/Encrypt", "encrypt"},
		{"gAAAAAbad", "refused"},
		{"/Decrypt", "decrypt"},
		{"/ReEncrypt", "reencrypt"},
		{"/GetStatus", "status"},
		{"Health/Check", "health"},
	} {
		if strings.Contains(block, k.marker) {
			return k.kind
		}
	}
	return ""
}

// recipeShell runs recipe blocks with bash, with grpcurl and jq on PATH.
type recipeShell struct {
	path string // PATH: the pinned grpcurl first
}

func newRecipeShell(t *testing.T) recipeShell {
	t.Helper()
	grpcurl := testenv.LookPath(t, "grpcurl")
	jq := testenv.LookPath(t, "jq")
	testenv.LookPath(t, "bash")
	return recipeShell{path: strings.Join([]string{filepath.Dir(grpcurl), filepath.Dir(jq), "/usr/bin", "/bin"}, string(os.PathListSeparator))}
}

// run runs script with bash; strict adds -e -o pipefail, so that any
// failing command fails the block. The script is bash's stdin, as text
// pasted into a shell is.
func (sh recipeShell) run(t *testing.T, script string, strict bool, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--noprofile", "--norc"}
	if strict {
		args = append(args, "-e", "-o", "pipefail")
	}
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Env = append([]string{"PATH=" + sh.path, "HOME=" + t.TempDir(), "LC_ALL=C.UTF-8"}, env...)
	cmd.Stdin = strings.NewReader(script)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// jsonValues decodes one or more JSON documents printed one after another.
func jsonValues(t *testing.T, out string) []map[string]any {
	t.Helper()
	var values []map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var v map[string]any
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		t.Fatalf("no JSON in %q", out)
	}
	return values
}

// TestGrpcurlRecipes runs the grpcurl recipes of the README and
// docs/grpcurl.md exactly as written, block by block and then as one
// pasted session, against the sidecar as `go run ./cmd/fernet-sidecar
// --dev` starts it (on a free port, which SIDECAR names), and the
// re-encrypt recipe against a sidecar in the middle of a rotation.
func TestGrpcurlRecipes(t *testing.T) {
	sh := newRecipeShell(t)
	root := testenv.RepoRoot(t)
	blocks := map[string]string{}
	var order []string
	for _, block := range recipeBlocks(t, root) {
		kind := recipeKind(block)
		if kind == "" {
			t.Fatalf("a recipe block this test does not know; add a check for it:\n%s", block)
		}
		if _, dup := blocks[kind]; dup {
			t.Fatalf("two %s recipes", kind)
		}
		blocks[kind] = block
		order = append(order, block)
		for _, line := range strings.Split(block, "\n") {
			if strings.HasPrefix(line, "$ ") {
				t.Errorf("recipe line %q has a prompt: it cannot be pasted", line)
			}
		}
	}
	for _, kind := range []string{"list", "encrypt", "decrypt", "reencrypt", "refused", "status", "createtotp", "verifytotp", "replayed", "health"} {
		if blocks[kind] == "" {
			t.Fatalf("%v have no %s recipe", recipeFiles, kind)
		}
	}

	// The default target is where the sidecar serves by default.
	bin := imageBinary(t)
	m := regexp.MustCompile(`(?m)^SIDECAR=\$\{SIDECAR:-localhost:(\d+)\}$`).FindStringSubmatch(order[0])
	if m == nil {
		t.Fatalf("the first recipe must set SIDECAR=${SIDECAR:-localhost:<port>}:\n%s", order[0])
	}
	if _, port, _ := net.SplitHostPort(sidecartest.FlagDefaults(t, bin)["addr"]); port != m[1] {
		t.Errorf("the recipes default to port %s; the sidecar serves on %s by default", m[1], port)
	}

	devKeyFile := filepath.Join(t.TempDir(), "dev.key")
	dev := sidecartest.Start(t, bin, nil, "--dev", "--dev-key-file", devKeyFile, "--addr", "127.0.0.1:0", "--metrics-addr", "")
	devKey, err := os.ReadFile(devKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	devID := keyID(t, string(devKey))
	target := "SIDECAR=" + dev.Addr
	block := func(t *testing.T, kind string, env ...string) string {
		t.Helper()
		out, stderr, err := sh.run(t, blocks[kind], true, append([]string{target}, env...)...)
		if err != nil {
			t.Fatalf("the %s recipe failed: %v\nstdout:\n%s\nstderr:\n%s\nrecipe:\n%s", kind, err, out, stderr, blocks[kind])
		}
		return out
	}

	out := block(t, "list")
	for _, service := range []string{"fernet.v1.FernetService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(out, service+"\n") {
			t.Errorf("list recipe printed no %s:\n%s", service, out)
		}
	}

	token := strings.TrimSpace(block(t, "encrypt"))
	if !regexp.MustCompile(`^gAAAAA[A-Za-z0-9_=-]+$`).MatchString(token) {
		t.Fatalf("encrypt recipe printed %q, want a token", token)
	}
	if plaintext, _ := fernetDecrypt(t, strings.TrimSpace(string(devKey)), token); string(plaintext) != recipePlaintext {
		t.Fatalf("the encrypt recipe's token holds %q, want %q", plaintext, recipePlaintext)
	}

	decrypted := jsonValues(t, block(t, "decrypt", "TOKEN="+token))[0]
	if decrypted["plaintext"] != recipePlaintext || decrypted["keyId"] != devID || decrypted["needsReencrypt"] != false {
		t.Errorf("decrypt recipe printed %v, want plaintext %q, keyId %s, needsReencrypt false", decrypted, recipePlaintext, devID)
	}

	same := jsonValues(t, block(t, "reencrypt", "TOKEN="+token))[0]
	if same["token"] != token || same["keyId"] != devID || same["changed"] != false {
		t.Errorf("reencrypt recipe on a primary-key token printed %v, want the same token and changed false", same)
	}

	out, stderr, err := sh.run(t, blocks["refused"], true, target)
	if err == nil || !strings.Contains(stderr, "Code: InvalidArgument") || !strings.Contains(stderr, `"reason": "MALFORMED"`) {
		t.Errorf("refused-token recipe: err %v, stdout %q, stderr:\n%s\nwant a failure with InvalidArgument and reason MALFORMED", err, out, stderr)
	}

	status := jsonValues(t, block(t, "status"))[0]
	if status["primaryKeyId"] != devID || status["version"] != imageVersion {
		t.Errorf("status recipe printed %v, want primaryKeyId %s and version %s", status, devID, imageVersion)
	}

	checkTOTPRecipes(t, sh, blocks, target, strings.TrimSpace(string(devKey)), devID)

	health := jsonValues(t, block(t, "health"))
	if len(health) != 2 || health[0]["status"] != "SERVING" || health[1]["status"] != "SERVING" {
		t.Errorf("health recipe printed %v, want SERVING twice", health)
	}

	// Pasted in order into one shell, as the docs say: TOKEN flows from
	// the encrypt block into the next ones, and only the refused-token
	// block complains. The TOTP blocks, with the docs' made-up code,
	// find it wrong.
	out, stderr, err = sh.run(t, strings.Join(order, "\n"), false, target)
	if err != nil || !strings.Contains(out, `"plaintext": "`+recipePlaintext+`"`) || !strings.Contains(out, `"changed": false`) ||
		!strings.Contains(out, "otpauth://totp/") || !strings.Contains(out, "TOTP_OUTCOME_INVALID_CODE") ||
		!strings.Contains(out, `"status": "SERVING"`) || strings.Count(stderr, "ERROR:") != 1 || !strings.Contains(stderr, "MALFORMED") {
		t.Errorf("the recipes as one session: err %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}

	// During a rotation (primary B, old A), the re-encrypt recipe moves a
	// token under A to B and keeps its timestamp; the status recipe shows
	// both ids.
	oldKey, primaryKey := newKey(t), newKey(t)
	rotating := sidecartest.Start(t, bin, []string{"DJANGO_ENCRYPTION_KEY=" + primaryKey, "OLD_DJANGO_ENCRYPTION_KEY=" + oldKey},
		"--addr", "127.0.0.1:0", "--metrics-addr", "")
	target = "SIDECAR=" + rotating.Addr
	const then = 1_600_000_000
	underOld := fernetEncrypt(t, oldKey, []byte(recipePlaintext), then)
	moved := jsonValues(t, block(t, "reencrypt", "TOKEN="+underOld))[0]
	if moved["changed"] != true || moved["keyId"] != keyID(t, primaryKey) {
		t.Fatalf("reencrypt recipe on an old-key token printed %v, want changed true under %s", moved, keyID(t, primaryKey))
	}
	newToken, _ := moved["token"].(string)
	if plaintext, ts := fernetDecrypt(t, primaryKey, newToken); string(plaintext) != recipePlaintext || ts != then {
		t.Errorf("re-encrypted token holds %q at %d, want %q at %d", plaintext, ts, recipePlaintext, then)
	}
	status = jsonValues(t, block(t, "status"))[0]
	if ids, _ := status["decryptOnlyKeyIds"].([]any); status["primaryKeyId"] != keyID(t, primaryKey) || len(ids) != 1 || ids[0] != keyID(t, oldKey) {
		t.Errorf("status recipe during a rotation printed %v, want primary %s and decrypt-only [%s]", status, keyID(t, primaryKey), keyID(t, oldKey))
	}

	dev.Stop(t)
	rotating.Stop(t)
}

// checkTOTPRecipes runs the CreateTOTP and VerifyTOTP recipes as a user
// would: enrol, read the secret as an authenticator app does (from the
// URI), type its current code, then send it again. key is the sidecar's
// primary key, keyID its id, target the SIDECAR= setting.
func checkTOTPRecipes(t *testing.T, sh recipeShell, blocks map[string]string, target, key, keyID string) {
	t.Helper()
	run := func(script string, env ...string) string {
		t.Helper()
		out, stderr, err := sh.run(t, script, true, append([]string{target}, env...)...)
		if err != nil {
			t.Fatalf("recipe failed: %v\nstdout:\n%s\nstderr:\n%s\nrecipe:\n%s", err, out, stderr, script)
		}
		return out
	}
	// The block keeps the token in TOTP_TOKEN, as the next blocks use it.
	printed := strings.Split(strings.TrimSpace(run(blocks["createtotp"]+`echo "$TOTP_TOKEN"`+"\n")), "\n")
	if len(printed) != 2 {
		t.Fatalf("createtotp recipe printed %q, want the URI", printed[:len(printed)-1])
	}
	uri, err := url.Parse(printed[0])
	if err != nil || uri.Scheme != "otpauth" || uri.Host != "totp" || uri.Query().Get("issuer") != "Example" {
		t.Fatalf("createtotp recipe printed %q, want an otpauth://totp/ URI", printed[0])
	}
	token := printed[1]
	if stored, _ := fernetDecrypt(t, key, token); string(stored) != uri.Query().Get("secret") {
		t.Fatal("the token the createtotp recipe keeps does not hold the URI's secret")
	}
	secret, err := totp.DecodeBase32([]byte(uri.Query().Get("secret")))
	if err != nil {
		t.Fatalf("the URI's secret: %v", err)
	}
	code := totp.Defaults.Code(secret, totp.Defaults.Counter(time.Now()))

	out := run(blocks["verifytotp"], "TOTP_TOKEN="+token, "CODE="+code)
	result := jsonValues(t, out)[0]
	if result["outcome"] != "TOTP_OUTCOME_VALID" || result["keyId"] != keyID || result["counter"] == "0" {
		t.Fatalf("verifytotp recipe with the current code printed %v, want TOTP_OUTCOME_VALID with a counter", result)
	}
	if replayed := strings.TrimSpace(run(blocks["replayed"], "TOTP_TOKEN="+token, "CODE="+code, "RESULT="+out)); replayed != "TOTP_OUTCOME_REPLAYED" {
		t.Errorf("replay recipe printed %q, want TOTP_OUTCOME_REPLAYED", replayed)
	}
}
