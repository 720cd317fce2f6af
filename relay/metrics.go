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
		l := slices.Clone(latencies)
		slices.Sort(l)
		pct := func(p float64) time.Duration { return l[min(len(l)-1, int(p*float64(len(l))))] }
		doc["ProduceLatencyP50"], doc["ProduceLatencyP90"], doc["ProduceLatencyP99"], doc["ProduceLatencyMax"] = ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(l[len(l)-1])
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
