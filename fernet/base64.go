package fernet

import (
	"errors"
	"fmt"
)

// invalidSextet marks bytes outside the base64 alphabet in sextets.
const invalidSextet = 0xff

// sextets maps both the URL-safe and the standard alphabet, because Python's
// urlsafe_b64decode translates "-_" to "+/" and then accepts either.
var sextets = func() (t [128]byte) {
	for i := range t {
		t[i] = invalidSextet
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

var errNotASCII = errors.New("contains non-ASCII characters")

// decodePythonBase64 decodes s exactly as Python 3.11's
// base64.urlsafe_b64decode(str) does (binascii.a2b_base64, non-strict):
// characters outside the alphabet are skipped, extra "=" is accepted,
// decoding stops at the end of the first complete padding group, trailing
// bits are ignored, and missing padding is an error. A str holding
// non-ASCII fails in Python before decoding starts, so it fails here too.
func decodePythonBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil, errNotASCII
		}
	}
	out := make([]byte, 0, (len(s)+3)/4*3)
	var (
		quadPos  int
		leftover byte
		pads     int
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			// "=" counts only once two sextets of a quad are in; before
			// that CPython ignores it.
			if quadPos >= 2 {
				pads++
				if quadPos+pads >= 4 {
					return out, nil
				}
			}
			continue
		}
		v := sextets[c]
		if v == invalidSextet {
			continue
		}
		pads = 0
		switch quadPos {
		case 0:
			leftover = v
		case 1:
			out = append(out, leftover<<2|v>>4)
			leftover = v & 0x0f
		case 2:
			out = append(out, leftover<<4|v>>2)
			leftover = v & 0x03
		case 3:
			out = append(out, leftover<<6|v)
		}
		quadPos = (quadPos + 1) % 4
	}
	switch quadPos {
	case 0:
		return out, nil
	case 1:
		return nil, fmt.Errorf("invalid base64: %d data characters is 1 more than a multiple of 4", len(out)/3*4+1)
	default:
		return nil, errors.New("invalid base64: incorrect padding")
	}
}
