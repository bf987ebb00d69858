package client

import (
	"fmt"
	"testing"
	"time"
)

// TestWithTTLRoundsDown: the sidecar takes whole seconds. Python's check
// timestamp + ttl < now, with whole-second timestamp and now, gives the
// same verdict for a fractional ttl as for its floor.
func TestWithTTLRoundsDown(t *testing.T) {
	for _, tt := range []struct {
		ttl  time.Duration
		want int64
	}{
		{0, 0},
		{time.Hour, 3600},
		{1500 * time.Millisecond, 1},
		{999 * time.Millisecond, 0},
		{-time.Second, -1},
		{-1500 * time.Millisecond, -2},
		{-time.Nanosecond, -1},
	} {
		if got := *decryptTTL([]DecryptOption{WithTTL(tt.ttl)}); got != tt.want {
			t.Errorf("WithTTL(%v) sends %d s, want %d", tt.ttl, got, tt.want)
		}
	}
	if decryptTTL(nil) != nil {
		t.Error("no WithTTL sends a TTL")
	}
}

func TestChunks(t *testing.T) {
	size := func(n int) int { return n }
	for _, tt := range []struct {
		items              []int
		maxItems, maxBytes int
		want               string
	}{
		{nil, 3, 10, "[]"},
		{[]int{1, 1, 1, 1}, 0, 0, "[[1 1 1 1]]"},
		{[]int{1, 1, 1, 1}, 3, 0, "[[1 1 1] [1]]"},
		{[]int{1, 1, 1, 1}, 2, 0, "[[1 1] [1 1]]"},
		{[]int{4, 4, 4, 20, 1}, 0, 10, "[[4 4] [4] [20] [1]]"},
		{[]int{20}, 5, 10, "[[20]]"},
		{[]int{5, 5, 5, 5, 5}, 3, 10, "[[5 5] [5 5] [5]]"},
	} {
		got := chunks(tt.items, size, tt.maxItems, tt.maxBytes)
		if s := fmt.Sprint(got); s != tt.want {
			t.Errorf("chunks(%v, %d items, %d bytes) = %s, want %s", tt.items, tt.maxItems, tt.maxBytes, s, tt.want)
		}
	}
}
