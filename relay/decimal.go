package relay

import "strconv"

// parseDecimal is strconv.ParseInt(s, 10, 64) with a fast path for what
// SQS writes in SentTimestamp and ApproximateReceiveCount: up to 18 ASCII
// digits, which cannot overflow. Two of these a record cost about 1% of
// the function's CPU through strconv (docs/performance.md).
func parseDecimal(s string) (int64, error) {
	if len(s) == 0 || len(s) > 18 {
		return strconv.ParseInt(s, 10, 64)
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return strconv.ParseInt(s, 10, 64)
		}
		n = n*10 + int64(d)
	}
	return n, nil
}
