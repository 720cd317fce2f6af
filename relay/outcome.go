package relay

import (
	"sort"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Outcome is what became of one batch: for each record, nil when Kafka
// acknowledged it, else why it failed.
type Outcome struct {
	MessageIDs []string
	Errs       []error // per record, in batch order; nil means acknowledged
	Cause      error   // a cause that concerned the whole batch, or nil
	Bytes      int     // bytes of the acknowledged messages (key, value, headers)
	Start      time.Time
	End        time.Time
	Deadline   time.Time // the invocation's deadline; zero when it had none

	// DeadLettered are the records the relay moved to the DLQ (their Errs
	// are nil: handled), BackedOff the failed ones given a longer
	// visibility (see policy.go).
	DeadLettered []DeadLettered
	BackedOff    []BackedOff
}

// Succeeded is the number of records Kafka acknowledged.
func (o *Outcome) Succeeded() int { return len(o.Errs) - o.Failed() - len(o.DeadLettered) }

// DeadLetteredByReason counts the dead-lettered records by reason code.
func (o *Outcome) DeadLetteredByReason() map[string]int {
	m := map[string]int{}
	for _, d := range o.DeadLettered {
		m[d.Reason]++
	}
	return m
}

// BackedOffByDelay counts the backed-off records by delay, in steps.
func (o *Outcome) BackedOffByDelay() map[string]int {
	m := map[string]int{}
	for _, b := range o.BackedOff {
		m[delayStep(b.Delay)]++
	}
	return m
}

// delayStep names the step a backoff delay falls in, for logs and metrics.
func delayStep(d time.Duration) string {
	for _, s := range []struct {
		max  time.Duration
		name string
	}{{time.Minute, "le1m"}, {5 * time.Minute, "le5m"}, {15 * time.Minute, "le15m"}, {time.Hour, "le1h"}, {6 * time.Hour, "le6h"}} {
		if d <= s.max {
			return s.name
		}
	}
	return "gt6h"
}

// Failed is the number of records not acknowledged.
func (o *Outcome) Failed() int {
	n := 0
	for _, err := range o.Errs {
		if err != nil {
			n++
		}
	}
	return n
}

// FailedByReason counts the failed records by reason code.
func (o *Outcome) FailedByReason() map[string]int {
	m := map[string]int{}
	for _, err := range o.Errs {
		if err != nil {
			m[ReasonOf(err)]++
		}
	}
	return m
}

// Response is the partial batch response for SQS: every record not
// acknowledged, by messageId, once; an empty list when all were.
func (o *Outcome) Response() events.SQSEventResponse {
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	seen := map[string]bool{}
	for i, err := range o.Errs {
		id := o.MessageIDs[i]
		if err == nil || seen[id] {
			continue
		}
		seen[id] = true
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return resp
}

// reasonCounts returns the failure counts sorted by reason, for logs.
func reasonCounts(m map[string]int) []any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}
