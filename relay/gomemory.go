package relay

import "runtime/metrics"

// goMemory is what the Go runtime holds from the OS and has not given back
// (heap, stacks, its own structures), in bytes. Beside the process's RSS
// it tells the Go heap from the rest: librdkafka's C heap and the binary.
func goMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}
