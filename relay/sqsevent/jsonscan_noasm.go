//go:build (!amd64 && !arm64) || purego

package sqsevent

// indexSpecial returns the index of the first quote, backslash or control byte in
// b, or len(b).
func indexSpecial(b []byte) int { return indexSpecialWords(b) }
