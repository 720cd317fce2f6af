//go:build (amd64 || arm64) && !purego

package sqsevent

// indexSpecial returns the index of the first quote, backslash or control byte in
// b, or len(b), sixteen bytes at a time (jsonscan_$GOARCH.s): a 1 KiB
// body in about half the time of IndexByte for the quote, IndexByte for a
// backslash and a word-wide pass for control bytes.
//
//go:noescape
func indexSpecial(b []byte) int
