//go:build (!amd64 && !arm64) || purego

package sqsevent

// stop returns the index of the first quote, backslash or control byte in
// b, or len(b).
func stop(b []byte) int { return stopWords(b) }
