package fernet

// DecodePythonBase64 lets the external fuzz tests compare the decoder with
// the reference model.
var DecodePythonBase64 = decodePythonBase64

// sign appends HMAC-SHA256(signing key, data) to dst: tests sign bodies the
// engine would never make.
func (k *Key) sign(dst, data []byte) []byte {
	st := k.state()
	defer k.release(st)
	return st.sign(dst, data)
}
