package relay

import "strings"

// Trace headers. X-Amzn-Trace-Id is SQS's AWSTraceHeader verbatim;
// traceparent is the same trace as W3C Trace Context, for OpenTelemetry
// consumers, unless the producer set a traceparent attribute of its own.
const (
	HeaderXRay        = "X-Amzn-Trace-Id"
	HeaderTraceparent = "traceparent"
)

// traceparentLen is the length of a version-00 traceparent:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const traceparentLen = 55

// traceparent writes into dst the W3C traceparent of the X-Ray header
// xray ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;
// Sampled=1") and returns it, or false when xray has no valid root or no
// parent: W3C requires a parent id, and a traceparent that is not valid
// must not be sent. Sampled=1 sets the sampled flag; 0, "?" (deferred) or
// none leave it clear.
func traceparent(dst *[traceparentLen]byte, xray string) ([]byte, bool) {
	var root, parent string
	sampled := false
	for field := range strings.SplitSeq(xray, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
		switch k {
		case "Root":
			root = v
		case "Parent":
			parent = v
		case "Sampled":
			sampled = v == "1"
		}
	}
	// Root is "1-" 8 hex (the epoch seconds) "-" 24 hex: 35 bytes.
	if len(root) != 35 || root[:2] != "1-" || root[10] != '-' || !lowerHex(root[2:10]) || !lowerHex(root[11:]) {
		return nil, false
	}
	if len(parent) != 16 || !lowerHex(parent) || parent == "0000000000000000" {
		return nil, false
	}
	if root[2:10] == "00000000" && strings.Trim(root[11:], "0") == "" {
		return nil, false // the all-zero trace id is invalid
	}
	b := dst[:0]
	b = append(b, "00-"...)
	b = append(b, root[2:10]...)
	b = append(b, root[11:]...)
	b = append(b, '-')
	b = append(b, parent...)
	if sampled {
		b = append(b, "-01"...)
	} else {
		b = append(b, "-00"...)
	}
	return b, true
}

// lowerHex reports whether s is all lowercase hex digits, as W3C requires.
func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
