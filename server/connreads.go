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
	// unused keeps the connectionRead of each connection left with no
	// call, for the next call of any connection: a connection whose calls
	// come one at a time would otherwise make one per call.
	unused sync.Pool
}

// connectionRead is the turn to read on one connection, and how many calls
// hold it or wait for it.
type connectionRead struct {
	connection *peer.Peer
	turn       chan struct{}
	calls      int
}

func newConnectionReads() *connectionReads {
	return &connectionReads{
		reading: map[*peer.Peer]*connectionRead{},
		unused:  sync.Pool{New: func() any { return &connectionRead{turn: make(chan struct{}, 1)} }},
	}
}

// wait waits for the turn of the call's connection to read; done gives it
// back.
func (c *connectionReads) wait(ctx context.Context) (*connectionRead, error) {
	p, _ := peer.FromContext(ctx)
	c.mu.Lock()
	read, ok := c.reading[p]
	if !ok {
		read = c.unused.Get().(*connectionRead)
		read.connection = p
		c.reading[p] = read
	}
	read.calls++
	c.mu.Unlock()
	select {
	case read.turn <- struct{}{}:
		return read, nil
	case <-ctx.Done():
		c.leave(read)
		return nil, ctx.Err()
	}
}

// done gives back the turn that wait returned.
func (c *connectionReads) done(read *connectionRead) {
	<-read.turn
	c.leave(read)
}

// leave counts a call out of read, and forgets read with its last call.
func (c *connectionReads) leave(read *connectionRead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if read.calls--; read.calls == 0 {
		delete(c.reading, read.connection)
		read.connection = nil
		c.unused.Put(read)
	}
}
