package fernet

import (
	"testing"
	"time"
)

func TestUnixNowIsTheWallClock(t *testing.T) {
	for range 1000 {
		before := time.Now().Unix()
		got := unixNow()
		after := time.Now().Unix()
		if got < before || got > after {
			t.Fatalf("unixNow() = %d, want within [%d, %d]", got, before, after)
		}
	}
}
