package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

// The failure policy (policy.go) runs after the produce deadline, in the
// margin kept before the invocation's deadline: its SQS calls get at most
// settleShare of the time left, and never the answerReserve that logging
// and answering need.
const settleShare = 0.5

// answerPerRecord is the part of afterDeadlinePerRecord that comes after
// the SQS calls: the failure logs, the metrics and the response. Measured
// at 128 MB, 10,000 failed records took 0.6 s from the end of the SQS
// calls to the answer, about 4.3 µs a record on a full CPU; 5 µs once
// answered 74 ms late with the real brokers' JVMs running beside it.
const answerPerRecord = afterDeadlinePerRecord / 2

// answerReserve is the time kept after the SQS calls for a batch of
// records: half the margin, plus answerPerRecord at the function's share
// of a CPU.
func (h *Handler) answerReserve(records int) time.Duration {
	return h.margin/2 + time.Duration(float64(records)*float64(answerPerRecord)/h.cpuShare)
}

// sqsState is what a sandbox knows of its path to SQS.
type sqsState struct {
	mu          sync.Mutex
	maxReceives map[string]int // by source queue ARN
	warned      bool           // the SQS API failed once: said so
}

// maxReceiveCount is the source queue's maxReceiveCount, asked once per
// sandbox; 0 when unknown.
func (h *Handler) maxReceiveCount(ctx context.Context, log *slog.Logger, arn string) int {
	h.sqs.mu.Lock()
	n, ok := h.sqs.maxReceives[arn]
	h.sqs.mu.Unlock()
	if ok {
		return n
	}
	n, err := h.Queue.MaxReceiveCount(ctx, arn)
	if err != nil {
		h.sqsFailed(log, "read the source queue's redrive policy", err)
		return 0
	}
	h.sqs.mu.Lock()
	if h.sqs.maxReceives == nil {
		h.sqs.maxReceives = map[string]int{}
	}
	h.sqs.maxReceives[arn] = n
	h.sqs.mu.Unlock()
	return n
}

// sqsFailed says, once per sandbox, that the SQS API failed: failed
// records then come back after the queue's visibility timeout and
// permanent failures reach the DLQ after maxReceiveCount receives, as
// without the policy.
func (h *Handler) sqsFailed(log *slog.Logger, what string, err error) {
	h.sqs.mu.Lock()
	warned := h.sqs.warned
	h.sqs.warned = true
	h.sqs.mu.Unlock()
	if !warned {
		log.Warn("cannot "+what+" through the SQS API; failed records come back after the queue's visibility timeout"+
			" (a function in a VPC needs a NAT or an sqs interface endpoint); said once per sandbox", "error", err.Error())
	}
}

// deadLetter sends the records that failed permanently to the DLQ; each
// counts as handled once SQS accepts it, and stays failed otherwise.
// payload is the event, read again for the records' bodies and
// attributes. It runs before FIFO order is applied, so that a
// dead-lettered record does not hold back the later records of its group.
func (b *batchRun) deadLetter(ctx context.Context, payload []byte) {
	h, out := b.h, b.out
	if h.Queue == nil || !h.DeadLetters {
		return
	}
	var poison []int
	for i, err := range out.Errs {
		if err != nil && Permanent(ReasonOf(err)) {
			poison = append(poison, i)
		}
	}
	if len(poison) == 0 {
		return
	}
	recs, _, err := sqsevent.Decode(payload)
	if err != nil || len(recs) != len(out.Errs) {
		b.log.Error("cannot read the batch again to dead-letter its permanent failures; they are reported failed", "error", fmt.Sprint(err))
		return
	}
	letters := make([]DeadLetter, len(poison))
	for k, i := range poison {
		letters[k] = DeadLetter{Record: &recs[i], Reason: ReasonOf(out.Errs[i]), Err: out.Errs[i].Error()}
	}
	errs := h.Queue.DeadLetter(ctx, letters)
	var firstErr error
	for k, i := range poison {
		if k < len(errs) && errs[k] == nil {
			out.DeadLettered = append(out.DeadLettered, DeadLettered{Index: i, Reason: letters[k].Reason, Err: out.Errs[i]})
			out.Errs[i] = nil
			continue
		}
		err := errNoAnswer
		if k < len(errs) {
			err = errs[k]
		}
		out.Errs[i] = &PolicyError{Err: out.Errs[i], Policy: fmt.Errorf("not dead-lettered: %w", err)}
		if firstErr == nil && !errors.Is(err, ErrSQSRefused) {
			firstErr = err
		}
	}
	if firstErr != nil {
		h.sqsFailed(b.log, "send to the DLQ", firstErr)
	}
}

var errNoAnswer = errors.New("no answer from SQS")

// backOff gives every transiently failed record the visibility its
// receive count calls for.
func (b *batchRun) backOff(ctx context.Context) {
	h, out := b.h, b.out
	if h.Queue == nil || h.Retry.Base <= 0 || b.sourceARN == "" {
		return
	}
	var changes []VisibilityChange
	var which []int
	maxReceives := -1
	// The records of one FIFO group share a delay: SQS holds the group
	// until the last of them is visible anyway.
	groupJitter := map[string]float64{}
	for i, err := range out.Errs {
		if err == nil || Permanent(ReasonOf(err)) || i >= len(b.handles) || b.handles[i] == "" {
			continue
		}
		if maxReceives < 0 {
			maxReceives = h.maxReceiveCount(ctx, b.log, b.sourceARN)
		}
		j := -1.0
		if b.fifo.groups != nil && b.fifo.groups[i] != "" {
			if g, ok := groupJitter[b.fifo.groups[i]]; ok {
				j = g
			} else {
				j = jitter()
				groupJitter[b.fifo.groups[i]] = j
			}
		}
		if j < 0 {
			j = jitter()
		}
		d := h.Retry.Delay(int(b.receives[i]), maxReceives, j)
		if d <= 0 {
			continue
		}
		changes = append(changes, VisibilityChange{MessageID: out.MessageIDs[i], ReceiptHandle: b.handles[i], Visibility: d})
		which = append(which, i)
	}
	if len(changes) == 0 {
		return
	}
	errs := h.Queue.SetVisibility(ctx, b.sourceARN, changes)
	var firstErr error
	for k, i := range which {
		if k < len(errs) && errs[k] == nil {
			out.BackedOff = append(out.BackedOff, BackedOff{Index: i, Delay: changes[k].Visibility})
		} else if firstErr == nil && (k >= len(errs) || !errors.Is(errs[k], ErrSQSRefused)) {
			firstErr = errNoAnswer
			if k < len(errs) {
				firstErr = errs[k]
			}
		}
	}
	if firstErr != nil {
		h.sqsFailed(b.log, "change the visibility of failed records", firstErr)
	}
}

// settle applies the failure policy to the failed records within the
// time settleBudget gives its SQS calls, and FIFO order between them:
// dead-lettered records do not hold back their groups, backed-off ones do.
func (b *batchRun) settle() {
	budget := 10 * time.Second // without a deadline
	if !b.out.Deadline.IsZero() {
		budget = b.h.settleBudget(time.Until(b.out.Deadline), len(b.out.Errs))
	}
	if budget == 0 {
		b.log.Warn("no time left for the failure policy's SQS calls; failed records come back after the queue's visibility timeout",
			"failed", b.out.Failed())
		b.fifo.apply(b.out)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	b.deadLetter(ctx, b.payload)
	b.fifo.apply(b.out)
	b.backOff(ctx)
}

// settleBudget is how long the SQS calls after a batch of records may
// take with left before the invocation's deadline (negative: none):
// settleShare of it, less what answerReserve keeps; 0 when nothing is left.
func (h *Handler) settleBudget(left time.Duration, records int) time.Duration {
	return max(0, min(time.Duration(float64(left)*settleShare), left-h.answerReserve(records)))
}

// receiveCount is r's ApproximateReceiveCount, or 1 when it has none.
func receiveCount(r *Record) int32 {
	n, err := parseDecimal(r.ReceiveCount)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 1
	}
	return int32(n)
}

// PolicyError is a record that failed and whose failure policy could not
// be applied: it is reported failed, as without the policy.
type PolicyError struct {
	Err    error // why the record failed
	Policy error // why the policy was not applied
}

func (e *PolicyError) Error() string { return e.Err.Error() + " (" + e.Policy.Error() + ")" }

func (e *PolicyError) Unwrap() error { return e.Err }

// DeadLettered is a record the relay moved to the DLQ itself.
type DeadLettered struct {
	Index  int // in the batch
	Reason string
	Err    error
}

// BackedOff is a record given a longer visibility.
type BackedOff struct {
	Index int
	Delay time.Duration
}
