package fernet

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// invalidSextet marks bytes outside the base64 alphabet in the tables. Its
// high bit is set and no sextet's is, so OR-ing lookups detects any miss.
const invalidSextet = 0xff

// sextets maps both the URL-safe and the standard alphabet, because Python's
// urlsafe_b64decode translates "-_" to "+/" and then accepts either.
// urlSextets maps only the URL-safe alphabet, the one canonical tokens use.
var sextets, urlSextets = func() (lenient, url [256]byte) {
	for i := range lenient {
		lenient[i], url[i] = invalidSextet, invalidSextet
	}
	for i := 0; i < len(urlAlphabet); i++ {
		lenient[urlAlphabet[i]], url[urlAlphabet[i]] = byte(i), byte(i)
	}
	lenient['+'], lenient['/'] = 62, 63
	return lenient, url
}()

var errNotASCII = errors.New("contains non-ASCII characters")

// decodePythonBase64 decodes s exactly as Python 3.11's
// base64.urlsafe_b64decode(str) does (binascii.a2b_base64, non-strict):
// characters outside the alphabet are skipped, extra "=" is accepted,
// decoding stops at the end of the first complete padding group, trailing
// bits are ignored, and missing padding is an error. A str holding
// non-ASCII fails in Python before decoding starts, so it fails here too.
func decodePythonBase64(s string) ([]byte, error) {
	out, _, err := appendPythonBase64(nil, s)
	return out, err
}

// appendPythonBase64 appends what decodePythonBase64(s) returns to dst. It
// also reports whether s is canonical: exactly the padded URL-safe base64
// of what it decodes to, the only form this package makes.
//
// Canonical input, nearly every token, takes a fast path that reads whole
// quads; anything else takes the byte-at-a-time lenient decoder. Both give
// the same bytes for every input the fast path accepts (see
// TestCanonicalBase64MatchesLenient and FuzzCanonicalBase64).
func appendPythonBase64(dst []byte, s string) (out []byte, canonical bool, err error) {
	if out, canonical, ok := appendCanonicalBase64(dst, s); ok {
		return out, canonical, nil
	}
	out, err = appendLenientBase64(dst, s)
	return out, false, err
}

// appendCanonicalBase64 decodes s only when it has the shape of padded
// URL-safe base64: whole quads of the URL-safe alphabet, the last of which
// may end in "=" or "==". Python reads such input the plain way (nothing to
// skip, and its first padding group is the end), so the bytes are Python's.
// ok is false, and dst unchanged, for any other shape. canonical is false
// when the last sextet has bits that re-encoding would clear.
func appendCanonicalBase64(dst []byte, s string) (out []byte, canonical, ok bool) {
	if len(s)%4 != 0 {
		return dst, false, false
	}
	if len(s) == 0 {
		return dst, true, true
	}
	pads := 0
	if s[len(s)-1] == '=' {
		pads = 1
		if s[len(s)-2] == '=' {
			pads = 2
		}
	}
	start := len(dst)
	out = slices.Grow(dst, len(s)/4*3)[:start+len(s)/4*3]
	o := out[start:]
	// Every quad but the last, eight characters at a time while there are
	// eight. Each eight make six bytes, stored as eight: the two extra are
	// overwritten next, and the last quad's three bytes leave room for them.
	last := len(s) - 4
	i, j := 0, 0
	for ; i+8 <= last; i, j = i+8, j+6 {
		q := s[i : i+8]
		a, b, c, d, e, f, g, h := urlSextets[q[0]], urlSextets[q[1]], urlSextets[q[2]], urlSextets[q[3]],
			urlSextets[q[4]], urlSextets[q[5]], urlSextets[q[6]], urlSextets[q[7]]
		if (a|b|c|d|e|f|g|h)&0x80 != 0 {
			return dst, false, false
		}
		binary.BigEndian.PutUint64(o[j:], uint64(a)<<58|uint64(b)<<52|uint64(c)<<46|uint64(d)<<40|
			uint64(e)<<34|uint64(f)<<28|uint64(g)<<22|uint64(h)<<16)
	}
	if i < last {
		a, b, c, d := urlSextets[s[i]], urlSextets[s[i+1]], urlSextets[s[i+2]], urlSextets[s[i+3]]
		if (a|b|c|d)&0x80 != 0 {
			return dst, false, false
		}
		o[j], o[j+1], o[j+2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
		j += 3
	}
	// The last quad: "abcd", "abc=" or "ab==".
	a, b := urlSextets[s[last]], urlSextets[s[last+1]]
	c, d := byte(0), byte(0)
	if pads < 2 {
		c = urlSextets[s[last+2]]
	}
	if pads < 1 {
		d = urlSextets[s[last+3]]
	}
	if (a|b|c|d)&0x80 != 0 {
		return dst, false, false
	}
	o[j], o[j+1], o[j+2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
	switch pads {
	case 1:
		canonical = c&0x03 == 0
	case 2:
		canonical = b&0x0f == 0
	default:
		canonical = true
	}
	return out[:len(out)-pads], canonical, true
}

// urlAlphabet is the URL-safe base64 alphabet, which canonical tokens use.
const urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// encodeURLBase64 is base64.URLEncoding.Encode(dst, src), about a quarter
// faster on tokens: it takes six bytes per step, read as one word, where
// encoding/base64 takes three. The tail goes to encoding/base64; the split
// falls on a multiple of three bytes, so it changes nothing.
func encodeURLBase64(dst, src []byte) {
	i, j := 0, 0
	for ; i+8 <= len(src); i, j = i+6, j+8 {
		v := binary.BigEndian.Uint64(src[i:]) // the top six bytes are used
		d := dst[j : j+8]
		d[0], d[1], d[2], d[3] = urlAlphabet[v>>58], urlAlphabet[v>>52&0x3f], urlAlphabet[v>>46&0x3f], urlAlphabet[v>>40&0x3f]
		d[4], d[5], d[6], d[7] = urlAlphabet[v>>34&0x3f], urlAlphabet[v>>28&0x3f], urlAlphabet[v>>22&0x3f], urlAlphabet[v>>16&0x3f]
	}
	base64.URLEncoding.Encode(dst[j:], src[i:])
}

// appendLenientBase64 is Python's decoder, one byte at a time.
func appendLenientBase64(dst []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return dst, errNotASCII
		}
	}
	start := len(dst)
	out := slices.Grow(dst, (len(s)+3)/4*3)
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
		return dst, fmt.Errorf("invalid base64: %d data characters is 1 more than a multiple of 4", (len(out)-start)/3*4+1)
	default:
		return dst, errors.New("invalid base64: incorrect padding")
	}
}
