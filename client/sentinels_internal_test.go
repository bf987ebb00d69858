package client

import (
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// TestSentinelsCoverTheReasons: every reason has its sentinel. A reason
// added to package reasons fails this until the client knows it.
func TestSentinelsCoverTheReasons(t *testing.T) {
	for _, reason := range reasons.All {
		if _, ok := sentinels[reason]; !ok {
			t.Errorf("reason %s has no sentinel", reason)
		}
	}
	if len(sentinels) != len(reasons.All) {
		t.Errorf("%d sentinels for %d reasons: one is not in package reasons", len(sentinels), len(reasons.All))
	}
}
