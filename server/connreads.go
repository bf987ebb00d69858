package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/peer"
)

// connectionReads lets one message at a time be read on each connection,
// so that the calls of one connection that send nothing wait behind each
// other and hold at most one share of admission's bytes, rather than all
// of them: another connection's calls still get in.
//
// A connection is known by its peer.Peer, which gRPC makes once per
// connection and puts in the context of each of its calls. Were that to
// change, each call would be its own connection here, and only the bytes
// of admission would bound the calls that send nothing, as before.
type connectionReads struct {
	mu      sync.Mutex
	reading map[*peer.Peer]*connectionRead
}

// connectionRead is the turn to read on one connection, and how many calls
// hold it or wait for it.
type connectionRead struct {
	turn  chan struct{}
	calls int
}

func newConnectionReads() *connectionReads {
	return &connectionReads{reading: map[*peer.Peer]*connectionRead{}}
}

// wait waits for the turn of the call's connection to read, and returns
// what gives it back.
func (c *connectionReads) wait(ctx context.Context) (done func(), err error) {
	p, _ := peer.FromContext(ctx)
	c.mu.Lock()
	read, ok := c.reading[p]
	if !ok {
		read = &connectionRead{turn: make(chan struct{}, 1)}
		c.reading[p] = read
	}
	read.calls++
	c.mu.Unlock()
	leave := func() {
		c.mu.Lock()
		if read.calls--; read.calls == 0 {
			delete(c.reading, p)
		}
		c.mu.Unlock()
	}
	select {
	case read.turn <- struct{}{}:
		return func() { <-read.turn; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
