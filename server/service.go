package server

import (
	"context"
	"encoding/base64"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/fernet"
	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// Service implements fernet.v1.FernetService. It only translates between
// the proto messages and the fernet engine, and reports metrics.
type Service struct {
	fernetv1.UnimplementedFernetServiceServer

	keys    KeyringSource
	limits  Limits
	metrics *Metrics
	version string
	// allowedMethods and maxMessageBytes are reported by GetStatus; the
	// Server enforces them.
	allowedMethods  []string
	maxMessageBytes int
}

// KeyringSource gives the key set in use. A call takes it once and uses
// that one throughout, batches included, so a key reload never mixes two
// key sets within a call.
type KeyringSource interface {
	Keyring() *fernet.Keyring
}

// NewService serves the keys of keys within limits.
func NewService(keys KeyringSource, limits Limits, metrics *Metrics, version string) *Service {
	return &Service{keys: keys, limits: limits, metrics: metrics, version: version, allowedMethods: FernetMethods()}
}

// Limits bound what one call may ask for, so that no caller can make the
// sidecar hold unbounded memory.
type Limits struct {
	// MaxPlaintextBytes bounds one plaintext to encrypt. Tokens are bounded
	// by what the largest plaintext encrypts to (see maxTokenBytes).
	MaxPlaintextBytes int
	// MaxBatchItems bounds the items of one batch call.
	MaxBatchItems int
}

// DefaultLimits suit TOTP secrets and other PII fields with room to spare.
var DefaultLimits = Limits{MaxPlaintextBytes: 64 << 10, MaxBatchItems: 10000}

// maxTokenBytes is twice the canonical token of the largest plaintext:
// room for the whitespace and line breaks Python's decoder skips.
func (l Limits) maxTokenBytes() int {
	const overhead = 1 + 8 + 16 + 32 // version, timestamp, IV, HMAC
	padded := l.MaxPlaintextBytes/16*16 + 16
	return 2 * base64.URLEncoding.EncodedLen(overhead+padded)
}

func (l Limits) checkPlaintext(plaintext []byte) error {
	if len(plaintext) > l.MaxPlaintextBytes {
		return tooLarge(reasons.PlaintextTooLarge, "the plaintext", l.MaxPlaintextBytes, "bytes")
	}
	return nil
}

func (l Limits) checkToken(token string) error {
	if limit := l.maxTokenBytes(); len(token) > limit {
		return tooLarge(reasons.TokenTooLarge, "the token", limit, "bytes")
	}
	return nil
}

// itemsPerShare is how many items a batch worker claims at a time. It
// records them in the metrics together (see tally), so the duration
// histogram gets one observation per share.
const itemsPerShare = 64

// itemsPerCancelCheck is how many items a batch worker runs between checks
// that the caller is still there.
const itemsPerCancelCheck = 64

// itemsPerWorker: a batch gets one more worker, up to one per CPU, for
// every this many items; below it, spreading the work costs more than it
// saves.
const itemsPerWorker = 256

// call is what every item of one call shares: the key set, taken once so
// that a key reload never mixes two key sets within a call; the time the
// call started, which every TTL and TOTP code of the call is checked
// against, so that every check of the call uses one clock reading; and the
// request's TTL, nil when it gives none or the operation takes none.
type call struct {
	keyring    *fernet.Keyring
	now        time.Time
	ttlSeconds *int64
}

func (s *Service) newCall(ttlSeconds *int64) call {
	return call{keyring: s.keys.Keyring(), now: time.Now(), ttlSeconds: ttlSeconds}
}

// runUnary runs a call of one item: it records the item in op's metrics
// and turns its error into a gRPC status. The call's now is also the start
// of its duration.
func runUnary[In, Out any](s *Service, op operationMetrics, ttlSeconds *int64, item In, process func(call, In, *tally) (Out, error)) (Out, error) {
	c := s.newCall(ttlSeconds)
	var t tally
	out, err := process(c, item, &t)
	s.metrics.record(op, &t, time.Since(c.now))
	if err != nil {
		var zero Out
		return zero, statusError(op.operation, err)
	}
	return out, nil
}

// runBatch applies process to every item, spread over the CPUs for a large
// batch, with the results in request order. A failed item becomes an
// ItemError in its place and never fails the call; the call fails only when
// the batch is too large or the caller has gone away. Each share of items
// is recorded in op's metrics as a whole.
func runBatch[In, Out, Result any](
	ctx context.Context,
	s *Service,
	op operationMetrics,
	ttlSeconds *int64,
	items []In,
	process func(call, In, *tally) (Out, error),
	result func(Out, *fernetv1.ItemError) Result,
) ([]Result, error) {
	if len(items) > s.limits.MaxBatchItems {
		return nil, statusError(op.operation+" batch", tooLarge(reasons.BatchTooLarge, "the batch", s.limits.MaxBatchItems, "items"))
	}
	c := s.newCall(ttlSeconds)
	results := make([]Result, len(items))
	var next atomic.Int64 // the first item of the next share
	work := func() {
		for {
			start := int(next.Add(itemsPerShare)) - itemsPerShare
			if start >= len(items) {
				return
			}
			var share tally
			started := time.Now()
			left := false
			for i := start; i < min(start+itemsPerShare, len(items)); i++ {
				if i%itemsPerCancelCheck == 0 && ctx.Err() != nil {
					left = true
					break
				}
				out, err := process(c, items[i], &share)
				if err != nil {
					var zero Out
					results[i] = result(zero, itemError(op.operation, err))
					continue
				}
				results[i] = result(out, nil)
			}
			s.metrics.record(op, &share, time.Since(started))
			if left {
				return
			}
		}
	}
	var workers sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(items)/itemsPerWorker+1) - 1 {
		workers.Go(work)
	}
	work()
	workers.Wait()
	if ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return results, nil
}
