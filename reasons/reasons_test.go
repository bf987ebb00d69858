package reasons

import (
	"slices"
	"testing"
)

func TestTable(t *testing.T) {
	for i, r := range All {
		if slices.Contains(All[:i], r) {
			t.Errorf("%s is listed twice", r)
		}
	}
	for _, r := range Token {
		if !slices.Contains(All[:], r) || !IsToken(r) {
			t.Errorf("token reason %s is not in All, or IsToken denies it", r)
		}
	}
	for r := range messages {
		if !slices.Contains(All[:], r) {
			t.Errorf("%s has a message but is not in All", r)
		}
	}
	if IsToken(Internal) || IsToken("") {
		t.Error("IsToken holds a reason that refuses no token")
	}
}
