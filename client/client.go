package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

// Defaults of the options.
const (
	// DefaultTimeout is the deadline of an RPC whose context has none.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxAttempts is how many times an RPC is tried when it fails
	// with UNAVAILABLE (the first try included).
	DefaultMaxAttempts = 3
	// DefaultMaxBatchItems is the most items a batch method sends in one
	// RPC; the sidecar refuses more than its --max-batch-items (10000 by
	// default).
	DefaultMaxBatchItems = 1000
	// DefaultMaxBatchBytes bounds the payload (plaintexts or tokens) of one
	// batch RPC, well under the sidecar's --max-message-bytes (4 MiB by
	// default).
	DefaultMaxBatchBytes = 2 << 20
	// DefaultBatchRPCs is how many RPCs a batch method keeps in flight.
	DefaultBatchRPCs = 2
)

// maxRecvBytes bounds a response. A batch response is larger than its
// request (tokens are 4/3 of the plaintext, plus key ids and per-item
// errors), so this is well above the request bound.
const maxRecvBytes = 32 << 20

// Client calls a fernet-sidecar. It is safe for concurrent use; make one
// per process and share it, and Close it when done.
type Client struct {
	conn    *grpc.ClientConn
	rpc     fernetv1.FernetServiceClient
	opts    options
	callOpt []grpc.CallOption
}

type options struct {
	timeout       time.Duration
	maxAttempts   int
	waitForReady  bool
	maxBatchItems int
	maxBatchBytes int
	batchRPCs     int
	tls           *tls.Config
	dialOptions   []grpc.DialOption
}

// Option configures a Client.
type Option func(*options)

// WithTimeout sets the deadline of each RPC whose context has no deadline
// (DefaultTimeout when not set). A context with a deadline of its own keeps
// it. Zero or less means no default deadline.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithMaxAttempts sets how many times an RPC that fails with UNAVAILABLE
// is tried, the first try included (DefaultMaxAttempts when not set); 1
// turns retries off.
func WithMaxAttempts(n int) Option {
	return func(o *options) { o.maxAttempts = n }
}

// WithWaitForReady makes RPCs wait, up to their deadline, for the sidecar
// to accept connections instead of failing at once with UNAVAILABLE while
// it is not up. Useful when the app may start before its sidecar.
func WithWaitForReady() Option {
	return func(o *options) { o.waitForReady = true }
}

// WithMaxBatchItems sets the most items one batch RPC carries
// (DefaultMaxBatchItems when not set); the batch methods split longer
// slices into several RPCs. Zero or less means no split by count.
func WithMaxBatchItems(n int) Option {
	return func(o *options) { o.maxBatchItems = n }
}

// WithMaxBatchBytes sets the most plaintext or token bytes one batch RPC
// carries (DefaultMaxBatchBytes when not set). An item larger than this
// goes in an RPC of its own. Zero or less means no split by size.
func WithMaxBatchBytes(n int) Option {
	return func(o *options) { o.maxBatchBytes = n }
}

// WithBatchRPCs sets how many RPCs a batch method keeps in flight when
// its items need several (DefaultBatchRPCs when not set), so that the
// sidecar works on one while the client encodes or decodes another: 4000
// tokens re-encrypt about 20% faster with two than with one. 1 sends them
// one after another.
func WithBatchRPCs(n int) Option {
	return func(o *options) { o.batchRPCs = n }
}

// WithTLS connects over TLS with cfg, for a sidecar started with
// --tls-cert-file (set cfg.RootCAs to its CA, and cfg.Certificates to the
// client's certificate when it also has --tls-client-ca-file). Without it
// the connection is plaintext.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// WithDialOptions adds gRPC dial options, after the client's own, so they
// win: for example transport credentials, interceptors or a larger
// grpc.MaxCallRecvMsgSize.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// serviceConfig is the gRPC service config with the retry policy: only
// UNAVAILABLE is retried, for every method, since none has side effects.
func serviceConfig(maxAttempts int) string {
	if maxAttempts < 2 {
		return `{}`
	}
	return fmt.Sprintf(`{
  "methodConfig": [{
    "name": [{"service": %q}],
    "retryPolicy": {
      "maxAttempts": %d,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`, fernetv1.FernetService_ServiceDesc.ServiceName, maxAttempts)
}

// Dial makes a Client for the sidecar at target: "host:port" (such as
// "localhost:50051") or "unix:///path/to/socket". It does not wait for a
// connection: the first RPC connects, and one that cannot fails with
// UNAVAILABLE (unless WithWaitForReady).
//
// The connection is plaintext, as the sidecar serves it on the loopback or
// a Unix socket inside the pod, unless WithTLS.
func Dial(target string, opts ...Option) (*Client, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	o := options{
		timeout:       DefaultTimeout,
		maxAttempts:   DefaultMaxAttempts,
		maxBatchItems: DefaultMaxBatchItems,
		maxBatchBytes: DefaultMaxBatchBytes,
		batchRPCs:     DefaultBatchRPCs,
	}
	for _, opt := range opts {
		opt(&o)
	}
	retryBuffer := 256 << 10
	if o.maxBatchBytes > 0 {
		// Let a whole batch RPC be buffered for a retry; gRPC commits an
		// RPC, and so never retries it, once its buffer is full.
		retryBuffer = max(retryBuffer, o.maxBatchBytes+o.maxBatchBytes/2)
	}
	transport := insecure.NewCredentials()
	if o.tls != nil {
		transport = credentials.NewTLS(o.tls)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		// Ignore any service config a resolver might supply: the retry
		// policy is ours.
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultServiceConfig(serviceConfig(o.maxAttempts)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes), grpc.MaxRetryRPCBufferSize(retryBuffer)),
	}
	if o.maxAttempts >= 2 {
		// gRPC caps attempts at 5 unless told otherwise.
		dialOpts = append(dialOpts, grpc.WithMaxCallAttempts(o.maxAttempts))
	}
	conn, err := grpc.NewClient(target, append(dialOpts, o.dialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("fernet-sidecar: dial %s: %w", target, err)
	}
	c := &Client{conn: conn, rpc: fernetv1.NewFernetServiceClient(conn), opts: o}
	if o.waitForReady {
		c.callOpt = append(c.callOpt, grpc.WaitForReady(true))
	}
	return c, nil
}

// checkTarget accepts "unix:///path" and "host:port".
func checkTarget(target string) error {
	if strings.HasPrefix(target, "unix:") {
		if !strings.HasPrefix(target, "unix:///") {
			return fmt.Errorf("fernet-sidecar: target %q: want unix:///absolute/path", target)
		}
		return nil
	}
	if target == "" || strings.Contains(target, "://") || !strings.Contains(target, ":") {
		return fmt.Errorf("fernet-sidecar: target %q: want host:port or unix:///path", target)
	}
	return nil
}

// Close closes the connection. RPCs in flight fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the client's gRPC connection, for the services the sidecar
// serves beside FernetService (grpc.health.v1.Health).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// callContext applies the default timeout when ctx has no deadline.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, has := ctx.Deadline(); has || c.opts.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.timeout)
}

// unary makes one call, with the client's timeout when ctx has no
// deadline, and converts its response, or its error (see fromCall).
func unary[Req, Resp, Out any](
	ctx context.Context,
	c *Client,
	call func(context.Context, Req, ...grpc.CallOption) (Resp, error),
	req Req,
	convert func(Resp) Out,
) (Out, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := call(ctx, req, c.callOpt...)
	if err != nil {
		var none Out
		return none, fromCall(err)
	}
	return convert(resp), nil
}

// Encrypted is a new token.
type Encrypted struct {
	Token string
	// KeyID is the id of the key that made it, the sidecar's primary key.
	KeyID string
}

// Decrypted is what a token holds.
type Decrypted struct {
	Plaintext []byte
	// KeyID is the id of the key that verified the token.
	KeyID string
	// Timestamp is the token's creation time in Unix seconds, as Python's
	// Fernet.extract_timestamp returns it. It is the token's own claim, up
	// to 2^64-1.
	Timestamp uint64
	// NeedsReEncrypt is true when the token was not made by the primary key:
	// ReEncrypt moves it there.
	NeedsReEncrypt bool
}

// ReEncrypted is a token moved to the primary key.
type ReEncrypted struct {
	Token string
	// KeyID is the id of the primary key.
	KeyID string
	// Changed is false when the token was already canonical and under the
	// primary key, and came back as it was sent: there is nothing to store.
	Changed bool
}

// Status is the sidecar's key ids, version, methods and limits.
type Status struct {
	PrimaryKeyID string
	// DecryptOnlyKeyIDs in the order they are tried, after the primary.
	DecryptOnlyKeyIDs []string
	Version           string
	// AllowedMethods are the FernetService methods the sidecar serves
	// (--allow-methods), e.g. "Encrypt"; the others fail with
	// ErrMethodNotAllowed.
	AllowedMethods []string
	Limits         Limits
}

// Limits are the sidecar's bounds on one call, to size batches by.
type Limits struct {
	MaxPlaintextBytes uint64
	MaxTokenBytes     uint64
	MaxBatchItems     uint64
	MaxMessageBytes   uint64
}

// DecryptOption configures Decrypt and DecryptBatch.
type DecryptOption func(*decryptOptions)

type decryptOptions struct {
	ttl *int64
}

// WithTTL refuses tokens older than ttl (ErrExpired) and tokens more than
// 60 s in the future (ErrFutureTimestamp), as Python's decrypt(token, ttl).
// Without it no time is checked. The sidecar counts whole seconds; a
// fraction of a second is rounded down, which is what Python's comparison
// with a fractional ttl amounts to. Zero and negative TTLs are checked as
// Python checks them (a token is expired once its second is past).
func WithTTL(ttl time.Duration) DecryptOption {
	seconds := int64(ttl / time.Second)
	if ttl%time.Second < 0 {
		seconds--
	}
	return func(o *decryptOptions) { o.ttl = &seconds }
}

func decryptTTL(opts []DecryptOption) *int64 {
	var o decryptOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o.ttl
}

// Encrypt makes a token of plaintext under the primary key, as Python's
// Fernet(primary).encrypt.
func (c *Client) Encrypt(ctx context.Context, plaintext []byte) (Encrypted, error) {
	return unary(ctx, c, c.rpc.Encrypt, &fernetv1.EncryptRequest{Plaintext: plaintext}, encrypted)
}

// Decrypt opens token with the first key that verifies it, as Python's
// MultiFernet(keys).decrypt(token, ttl). Without WithTTL it checks no
// time, as extract_timestamp: Decrypted.Timestamp is the token's.
func (c *Client) Decrypt(ctx context.Context, token string, opts ...DecryptOption) (Decrypted, error) {
	return unary(ctx, c, c.rpc.Decrypt, &fernetv1.DecryptRequest{Token: token, TtlSeconds: decryptTTL(opts)}, decrypted)
}

// ReEncrypt moves token to the primary key, keeping its timestamp, as
// Python's MultiFernet.rotate. It checks no TTL.
func (c *Client) ReEncrypt(ctx context.Context, token string) (ReEncrypted, error) {
	return unary(ctx, c, c.rpc.ReEncrypt, &fernetv1.ReEncryptRequest{Token: token}, reencrypted)
}

// Status reports the sidecar's key ids, version, methods and limits.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return unary(ctx, c, c.rpc.GetStatus, &fernetv1.GetStatusRequest{}, statusOf)
}

func statusOf(resp *fernetv1.GetStatusResponse) Status {
	return Status{
		PrimaryKeyID:      resp.GetPrimaryKeyId(),
		DecryptOnlyKeyIDs: resp.GetDecryptOnlyKeyIds(),
		Version:           resp.GetVersion(),
		AllowedMethods:    resp.GetAllowedMethods(),
		Limits: Limits{
			MaxPlaintextBytes: resp.GetLimits().GetMaxPlaintextBytes(),
			MaxTokenBytes:     resp.GetLimits().GetMaxTokenBytes(),
			MaxBatchItems:     resp.GetLimits().GetMaxBatchItems(),
			MaxMessageBytes:   resp.GetLimits().GetMaxMessageBytes(),
		},
	}
}

func encrypted(resp *fernetv1.EncryptResponse) Encrypted {
	return Encrypted{Token: resp.GetToken(), KeyID: resp.GetKeyId()}
}

func decrypted(resp *fernetv1.DecryptResponse) Decrypted {
	return Decrypted{
		Plaintext:      resp.GetPlaintext(),
		KeyID:          resp.GetKeyId(),
		Timestamp:      resp.GetTimestamp(),
		NeedsReEncrypt: resp.GetNeedsReencrypt(),
	}
}

func reencrypted(resp *fernetv1.ReEncryptResponse) ReEncrypted {
	return ReEncrypted{Token: resp.GetToken(), KeyID: resp.GetKeyId(), Changed: resp.GetChanged()}
}

// errShortResponse is a batch response whose results do not match its
// items one to one: a server bug, never expected.
var errShortResponse = errors.New("fernet-sidecar: batch response has a different number of results than items sent")
