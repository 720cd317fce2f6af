package relay

import (
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// Metrics writes one CloudWatch Embedded Metric Format document per batch
// to W (the function's stdout): CloudWatch Logs turns them into metrics, so
// the relay makes no PutMetricData calls. Failures by reason go in one more
// document per reason, with a Reason dimension.
type Metrics struct {
	W            io.Writer
	Namespace    string // default "SqsMskRelay"
	FunctionName string // the FunctionName dimension

	mu sync.Mutex // one document per line
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// Emit writes the metrics of one batch. latencies are the produce
// latencies of the acknowledged messages (Add to acknowledgement).
func (m *Metrics) Emit(out *Outcome, latencies []time.Duration) {
	if m == nil || m.W == nil {
		return
	}
	ns := m.Namespace
	if ns == "" {
		ns = "SqsMskRelay"
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	failed := out.Failed()
	doc := map[string]any{
		"FunctionName":  m.FunctionName,
		"Records":       len(out.Errs),
		"Succeeded":     out.Succeeded(),
		"Failed":        failed,
		"DeadLettered":  len(out.DeadLettered),
		"BackedOff":     len(out.BackedOff),
		"Bytes":         out.Bytes,
		"BatchDuration": ms(out.End.Sub(out.Start)),
	}
	metrics := []emfMetric{{"Records", "Count"}, {"Succeeded", "Count"}, {"Failed", "Count"}, {"DeadLettered", "Count"},
		{"BackedOff", "Count"}, {"Bytes", "Bytes"}, {"BatchDuration", "Milliseconds"}}
	if !out.Deadline.IsZero() {
		doc["TimeLeftAtReturn"] = ms(out.Deadline.Sub(out.End))
		metrics = append(metrics, emfMetric{"TimeLeftAtReturn", "Milliseconds"})
	}
	if len(latencies) > 0 {
		p := percentiles(latencies, 0.5, 0.9, 0.99, 1)
		doc["ProduceLatencyP50"], doc["ProduceLatencyP90"], doc["ProduceLatencyP99"], doc["ProduceLatencyMax"] = ms(p[0]), ms(p[1]), ms(p[2]), ms(p[3])
		metrics = append(metrics, emfMetric{"ProduceLatencyP50", "Milliseconds"}, emfMetric{"ProduceLatencyP90", "Milliseconds"},
			emfMetric{"ProduceLatencyP99", "Milliseconds"}, emfMetric{"ProduceLatencyMax", "Milliseconds"})
	}
	now := time.Now().UnixMilli()
	doc["_aws"] = emfMeta{Timestamp: now, CloudWatchMetrics: []emfDirective{{Namespace: ns, Dimensions: [][]string{{"FunctionName"}}, Metrics: metrics}}}
	docs := []map[string]any{doc}
	// One document per value of a second dimension.
	by := func(dim, metric string, counts map[string]int) {
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			docs = append(docs, map[string]any{
				"FunctionName": m.FunctionName,
				dim:            k,
				metric:         counts[k],
				"_aws": emfMeta{Timestamp: now, CloudWatchMetrics: []emfDirective{{Namespace: ns,
					Dimensions: [][]string{{"FunctionName", dim}}, Metrics: []emfMetric{{metric, "Count"}}}}},
			})
		}
	}
	by("Reason", "FailedRecords", out.FailedByReason())
	by("Reason", "DeadLetteredRecords", out.DeadLetteredByReason())
	by("Delay", "BackedOffRecords", out.BackedOffByDelay())
	m.mu.Lock()
	defer m.mu.Unlock()
	enc := json.NewEncoder(m.W)
	for _, d := range docs {
		_ = enc.Encode(d) // one line each; a lost metric must not fail a batch
	}
}

// percentiles returns, for each of ps (ascending, in [0, 1]), the element
// of l at index min(len(l)-1, p×len(l)) once sorted, without sorting:
// each is selected from what is left above the last (quickselect), so 4,000
// latencies take about a fifth of a sort's time. l is not modified.
func percentiles(l []time.Duration, ps ...float64) []time.Duration {
	a := slices.Clone(l)
	out := make([]time.Duration, len(ps))
	lo := 0
	for i, p := range ps {
		k := min(len(a)-1, int(p*float64(len(a))))
		selectNth(a[lo:], k-lo)
		out[i], lo = a[k], k
	}
	return out
}

// selectNth reorders a so that a[k] is the element a sorted a would hold
// there, with none greater before it and none smaller after it.
func selectNth(a []time.Duration, k int) { selectWithin(a, k, 64) }

// selectWithin is selectNth that sorts what is left after maxRounds
// partitions, should the pivots keep missing.
func selectWithin(a []time.Duration, k, maxRounds int) {
	lo, hi := 0, len(a)-1
	for rounds := 0; lo < hi; rounds++ {
		if rounds >= maxRounds {
			slices.Sort(a[lo : hi+1])
			return
		}
		// Median of three as the pivot: latencies often arrive nearly sorted.
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return // j < k < i: a[k] equals the pivot
		}
	}
}
