package testenv

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// EchoedInput reports what of input, if anything, msg holds: a run of 6
// of its characters, or the hex of one of the bytes it decodes to as
// base64 (the way an engine error would name a bad byte). "" means none.
func EchoedInput(msg, input string) string {
	for i := 0; i+6 <= len(input); i++ {
		if strings.Contains(msg, input[i:i+6]) {
			return fmt.Sprintf("%q", input[i:i+6])
		}
	}
	raw, err := base64.URLEncoding.DecodeString(input + strings.Repeat("=", (4-len(input)%4)%4))
	if err != nil {
		raw = []byte(input)
	}
	for _, b := range raw {
		for _, form := range []string{"0x%02x", "0x%02X"} {
			if hex := fmt.Sprintf(form, b); strings.Contains(msg, hex) {
				return hex
			}
		}
	}
	return ""
}
