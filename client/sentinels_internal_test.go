package client

import (
	"testing"

	"github.com/fernet-sidecar/fernet-sidecar/reasons"
)

// TestSentinelsCoverTheReasons: every reason has its sentinel but the
// admission reasons, which have none yet: a caller tells them by their
// status code, RESOURCE_EXHAUSTED (retry later). A reason added to package
// reasons fails this until the client knows it.
func TestSentinelsCoverTheReasons(t *testing.T) {
	byStatusCode := map[string]bool{reasons.TooManyBatches: true, reasons.TooManyCalls: true}
	for _, reason := range reasons.All {
		if _, ok := sentinels[reason]; !ok && !byStatusCode[reason] {
			t.Errorf("reason %s has no sentinel", reason)
		}
	}
	if len(sentinels)+len(byStatusCode) != len(reasons.All) {
		t.Errorf("%d sentinels for %d reasons: one is not in package reasons", len(sentinels), len(reasons.All)-len(byStatusCode))
	}
}
