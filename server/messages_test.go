package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// TestErrorMessagesAreFixedPerReason: a message depends on the reason
// only, so inputs that fail for the same reason get the same text, and no
// byte of the input reaches it: not as text, not as the hex of a decoded
// byte (the review saw "version byte is 0x68" and "17 data characters").
func TestErrorMessagesAreFixedPerReason(t *testing.T) {
	ts := startServer(t, Limits{MaxPlaintextBytes: 1024, MaxBatchItems: 4})
	good := tokenUnder(t, ts.primary, "secret", 1_700_000_000)
	ttl := int64(60)
	inputs := []struct {
		token  string
		ttl    *int64
		reason string
	}{
		{"aGVsbG8gd29ybGQ=", nil, reasons.Malformed},                                      // version byte 0x68
		{"JBSWY3DPEHPK3PXP", nil, reasons.Malformed},                                      // a bare TOTP secret
		{"aGVsbG8gd29ybGQgdGhpcyBpcyBub3Q", nil, reasons.Malformed},                       // 31 characters
		{strings.Repeat("x", 17), nil, reasons.Malformed},                                 // 17 data characters
		{good[:len(good)-8], nil, reasons.Malformed},                                      // truncated
		{tokenUnder(t, newKey(t), "other", 1_700_000_000), nil, reasons.InvalidSignature}, // unknown key
		{tokenUnder(t, ts.primary, "old", 1_000_000_000), &ttl, reasons.Expired},
		{tokenUnder(t, ts.primary, "future", 1<<40), &ttl, reasons.FutureTimestamp},
		{strings.Repeat("gAAAAA", 1000), nil, reasons.TokenTooLarge},
	}
	byReason := map[string]string{}
	for _, in := range inputs {
		_, err := ts.client.Decrypt(ctx(t), &fernetv1.DecryptRequest{Token: in.token, TtlSeconds: in.ttl})
		wantReason(t, err, in.reason)
		msg := status.Convert(err).Message()
		if seen, ok := byReason[in.reason]; ok && seen != msg {
			t.Errorf("%s: messages %q and %q differ", in.reason, seen, msg)
		}
		byReason[in.reason] = msg
		if what := testenv.EchoedInput(msg, in.token); what != "" {
			t.Errorf("the message %q of %s echoes the input: %s", msg, in.reason, what)
		}
		batch, err := ts.client.DecryptBatch(ctx(t), &fernetv1.DecryptBatchRequest{Tokens: []string{in.token}, TtlSeconds: in.ttl})
		if err != nil {
			t.Fatal(err)
		}
		if item := batch.GetResults()[0].GetError(); item.GetReason() != in.reason || testenv.EchoedInput(item.GetMessage(), in.token) != "" {
			t.Errorf("batch item error %v for %s echoes its input or has the wrong reason", item, in.reason)
		}
	}
	for _, size := range []int{1025, 5000} {
		_, err := ts.client.Encrypt(ctx(t), &fernetv1.EncryptRequest{Plaintext: make([]byte, size)})
		if msg := status.Convert(err).Message(); strings.Contains(msg, fmt.Sprint(size)) {
			t.Errorf("the message %q names the plaintext's size", msg)
		}
	}
	_, err := ts.client.EncryptBatch(ctx(t), &fernetv1.EncryptBatchRequest{Plaintexts: make([][]byte, 7)})
	if msg := status.Convert(err).Message(); strings.Contains(msg, "7") {
		t.Errorf("the message %q names the batch's size", msg)
	}
}
