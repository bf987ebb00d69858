package fernet

// DecodePythonBase64 lets the external fuzz tests compare the decoder with
// the reference model.
var DecodePythonBase64 = decodePythonBase64
