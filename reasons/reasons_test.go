package reasons

import (
	"errors"
	"fmt"
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

func TestOf(t *testing.T) {
	sentinel := New(Expired, "token expired")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{sentinel, Expired},
		{fmt.Errorf("decrypt: %w", fmt.Errorf("%w: 17 s late", sentinel)), Expired},
		{errors.New("disk on fire"), Internal},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("Of(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
	if wrapped := fmt.Errorf("%w: detail", sentinel); !errors.Is(wrapped, sentinel) || sentinel.Error() != "token expired" {
		t.Error("a sentinel made by New is not matched by errors.Is, or lost its text")
	}
}
