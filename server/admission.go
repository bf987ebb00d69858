package server

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// Admission bounds the work in flight across all callers, so that many
// calls at once cannot take the process past its memory limit, while
// small calls keep flowing.
//
// Every call waits for room before its message is read: until then HTTP/2
// flow control keeps all but its first 64 KiB at the caller. It waits for
// MaxMessageBytes of MaxBatchBytes, or of MaxCallBytes for a call that is
// not a batch (its size is not known before it arrives), gives back what
// it did not need once it is decoded, and a batch then waits for its items
// of MaxBatchItems. A call past MaxBatches or MaxCalls is refused, with
// RESOURCE_EXHAUSTED, before its message is read; so is one whose message
// has not arrived MessageReadTimeout after it got its bytes, so that
// callers that open calls and send nothing cannot hold the room for long.
// And each connection reads one message of each kind at a time, so that
// such calls on one connection hold no more than one message's room.
type Admission struct {
	// MaxBatches bounds the batch calls waiting or being worked on.
	MaxBatches int64
	// MaxBatchBytes and MaxBatchItems bound the request bytes and items
	// of the batch calls being received or worked on.
	MaxBatchBytes int64
	MaxBatchItems int64
	// MaxCalls bounds the other calls in flight, and MaxCallBytes their
	// request bytes being received.
	MaxCalls     int64
	MaxCallBytes int64
	// MessageReadTimeout bounds the time from a call getting its bytes to
	// its message being read; 0 means defaultMessageReadTimeout.
	MessageReadTimeout time.Duration
}

// defaultMessageReadTimeout: a caller on loopback or a Unix socket sends
// a 4 MiB message in milliseconds.
const defaultMessageReadTimeout = 10 * time.Second

// bytesPerBatchItem is what one batch item costs beyond its own bytes
// while it is worked on: its result, its token and their protobuf
// structures, about 400 bytes measured for a short plaintext.
const bytesPerBatchItem = 400

// AdmissionFor sizes the bounds from the process's memory limit (the Go
// runtime's, GOMEMLIMIT). A batch being worked on holds about five times
// its request (the request, its results, their encoding), so an eighth of
// the limit goes to the request bytes of batches (two 10,000-item, 4 MiB
// batches at the default 64 MiB), and as many items as that many bytes
// pay for. Another eighth goes to the messages of other calls being read
// (two of 4 MiB at the default; once read, a call keeps only its own
// size). However small the limit, one message of each kind always fits.
func AdmissionFor(memoryLimit int64, maxMessageBytes int, limits Limits) Admission {
	eighth := memoryLimit / 8
	return Admission{
		MaxBatches:    64,
		MaxBatchBytes: max(int64(maxMessageBytes), eighth),
		MaxBatchItems: max(int64(limits.MaxBatchItems), eighth/bytesPerBatchItem),
		MaxCalls:      max(64, memoryLimit/4/(64<<10)),
		MaxCallBytes:  max(int64(maxMessageBytes), eighth),
	}
}

// Label values of fernet_admission_rejected_total.
const (
	rejectedBatches      = "batches"
	rejectedCalls        = "calls"
	rejectedSlowMessages = "slow_messages"
)

// admission counts the work in flight against an Admission.
type admission struct {
	limits              Admission
	maxMessageBytes     int64
	batchLane, callLane *lane
	batchItems          *semaphore.Weighted
	batches, calls      atomic.Int64
	rejected            *prometheus.CounterVec
}

// lane is what the calls of one kind, batches or the others, share: each
// connection's turn to read, the bytes of the messages being read and of
// the calls being worked on, and the reason they are refused with.
type lane struct {
	reads  *connectionReads
	bytes  *semaphore.Weighted
	reason string
	batch  bool
}

func newAdmission(limits Admission, maxMessageBytes int, registry prometheus.Registerer) *admission {
	rejected := newCounterVec("fernet_admission_rejected_total",
		"Calls refused with RESOURCE_EXHAUSTED, before their message was read, because too many were in flight (batches, calls) or their message did not arrive in time (slow_messages).",
		"reason")
	registry.MustRegister(rejected)
	for _, label := range []string{rejectedBatches, rejectedCalls, rejectedSlowMessages} {
		rejected.WithLabelValues(label)
	}
	if limits.MessageReadTimeout <= 0 {
		limits.MessageReadTimeout = defaultMessageReadTimeout
	}
	// One message of each kind always fits.
	limits.MaxBatchBytes = max(limits.MaxBatchBytes, int64(maxMessageBytes))
	limits.MaxCallBytes = max(limits.MaxCallBytes, int64(maxMessageBytes))
	return &admission{
		limits:          limits,
		maxMessageBytes: int64(maxMessageBytes),
		batchLane:       &lane{newConnectionReads(), semaphore.NewWeighted(limits.MaxBatchBytes), reasons.TooManyBatches, true},
		callLane:        &lane{newConnectionReads(), semaphore.NewWeighted(limits.MaxCallBytes), reasons.TooManyCalls, false},
		batchItems:      semaphore.NewWeighted(limits.MaxBatchItems),
		rejected:        rejected,
	}
}

// isBatch tells batch methods by name: they are the ones whose message
// may be as large as MaxMessageBytes.
func isBatch(method string) bool { return strings.HasSuffix(method, "Batch") }

// admit wraps every method of desc: a call is counted from the start of
// its handler, before its message is read, to its end, and refused at
// once past MaxCalls, or past MaxBatches for a batch; then it waits for
// its bytes, and a batch for its items (gate). It wraps the handlers
// rather than intercepting calls because gRPC reads the message in the
// handler (dec), before any interceptor runs; and a handler's end, unlike
// a stream's, is known without a goroutine.
func (a *admission) admit(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	admitted := *desc
	admitted.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, method := range desc.Methods {
		if isBatch(method.MethodName) {
			method.Handler = a.count(&a.batches, a.limits.MaxBatches, rejectedBatches, reasons.TooManyBatches,
				a.gate(a.batchLane, method.Handler))
		} else {
			method.Handler = a.count(&a.calls, a.limits.MaxCalls, rejectedCalls, reasons.TooManyCalls,
				a.gate(a.callLane, method.Handler))
		}
		admitted.Methods[i] = method
	}
	return &admitted
}

// count runs handler while fewer than limit calls are counted in count,
// and refuses the call otherwise.
func (a *admission) count(count *atomic.Int64, limit int64, label, reason string, handler grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		defer count.Add(-1)
		if count.Add(1) > limit {
			a.rejected.WithLabelValues(label).Inc()
			return nil, overloaded(reason)
		}
		return handler(srv, ctx, dec, interceptor)
	}
}

// gate makes a method's handler wait for its connection's turn to read
// and for room in its lane's bytes before its message is read, read it
// within MessageReadTimeout, give back its turn once it is read, and hold
// its bytes, and a batch's items, until it returns.
func (a *admission) gate(lane *lane, handler grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		stream, ok := grpc.ServerTransportStreamFromContext(ctx).(statusWriter)
		if !ok {
			return nil, status.Error(codes.Internal, "the call's stream cannot be ended early")
		}
		gated := &gatedCall{admission: a, lane: lane, ctx: ctx, stream: stream, dec: dec}
		if err := gated.enter(); err != nil {
			return nil, err
		}
		defer gated.leave()
		return handler(srv, ctx, gated.decode, interceptor)
	}
}

// statusWriter is what gRPC's server stream, which it puts in every call's
// context, can do beyond grpc.ServerTransportStream: end the call with a
// status at once, as gRPC does when a handler returns. That also cancels
// the stream, which ends a read of its message that is still waiting. It
// is not part of gRPC's API, so a call whose stream cannot do it is
// refused with INTERNAL rather than served without a read deadline; the
// tests (TestAdmissionBoundsTheWaitForAMessage) catch a gRPC that drops it.
type statusWriter interface {
	WriteStatus(*status.Status) error
}

// gatedCall is what one call holds of admission, from the start of its
// handler to its end. One struct, rather than closures, keeps a call to a
// few allocations.
type gatedCall struct {
	admission *admission
	lane      *lane
	ctx       context.Context
	stream    statusWriter
	dec       func(any) error
	turn      *connectionRead // its connection's turn to read, until its message is read
	reserved  int64           // its bytes in lane.bytes
	items     int64           // its items in admission.batchItems
	read      atomic.Int32    // messageReading, messageRead or messageLate
}

// States of a message read against its deadline.
const (
	messageReading int32 = iota
	messageRead
	messageLate
)

// enter waits for the connection's turn to read, then for a whole
// message's bytes.
func (c *gatedCall) enter() error {
	turn, err := c.lane.reads.wait(c.ctx)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	c.turn = turn
	if err := c.lane.bytes.Acquire(c.ctx, c.admission.maxMessageBytes); err != nil {
		c.giveBackTurn()
		return status.FromContextError(err).Err()
	}
	c.reserved = c.admission.maxMessageBytes
	return nil
}

// leave gives back all the call holds.
func (c *gatedCall) leave() {
	c.giveBackTurn()
	c.lane.bytes.Release(c.reserved)
	c.admission.batchItems.Release(c.items)
}

func (c *gatedCall) giveBackTurn() {
	if c.turn != nil {
		c.lane.reads.done(c.turn)
		c.turn = nil
	}
}

// decode is the handler's dec: it reads the message in time, gives back
// the turn, keeps only the bytes of the message, and for a batch waits
// for its items.
func (c *gatedCall) decode(req any) error {
	err := c.readInTime(req)
	c.giveBackTurn()
	if err != nil {
		return err
	}
	if msg, ok := req.(proto.Message); ok {
		size := min(int64(proto.Size(msg)), c.reserved)
		c.lane.bytes.Release(c.reserved - size)
		c.reserved = size
	}
	if !c.lane.batch {
		return nil
	}
	// A batch over the item limit is refused by the service; it must not
	// wait for more than there is.
	wanted := min(int64(batchItems(req)), c.admission.limits.MaxBatchItems)
	if err := c.admission.batchItems.Acquire(c.ctx, wanted); err != nil {
		return status.FromContextError(err).Err()
	}
	c.items = wanted
	return nil
}

// readInTime reads the call's message with dec, on the handler's own
// goroutine, and refuses the call if it has not arrived MessageReadTimeout
// after it got its bytes: a timer ends the call (expire), which ends the
// read. A goroutine per read would cost every call a wake-up.
func (c *gatedCall) readInTime(req any) error {
	timer := time.AfterFunc(c.admission.limits.MessageReadTimeout, c.expire)
	err := c.dec(req)
	if !c.read.CompareAndSwap(messageReading, messageRead) {
		return slowMessage(c.lane.reason)
	}
	timer.Stop()
	return err
}

func (c *gatedCall) expire() {
	if c.read.CompareAndSwap(messageReading, messageLate) {
		c.admission.rejected.WithLabelValues(rejectedSlowMessages).Inc()
		_ = c.stream.WriteStatus(status.Convert(slowMessage(c.lane.reason)))
	}
}

// batchItems counts the items of a batch request: its tokens or its
// plaintexts.
func batchItems(req any) int {
	switch r := req.(type) {
	case interface{ GetTokens() []string }:
		return len(r.GetTokens())
	case interface{ GetPlaintexts() [][]byte }:
		return len(r.GetPlaintexts())
	default:
		return 0
	}
}

// slowMessage is the status of a call refused because its message did not
// arrive in time.
func slowMessage(reason string) error {
	return reasonedError(codes.ResourceExhausted, reason, "the message did not arrive in time; retry later")
}

// overloaded is the status of a refused call: a fixed message, and what
// was full in the ErrorInfo reason.
func overloaded(reason string) error {
	return reasonedError(codes.ResourceExhausted, reason, reasons.Message(reason))
}
