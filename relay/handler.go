package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// maxProduceWindow bounds a batch that arrives without a deadline (outside
// Lambda): Lambda's own longest timeout.
const maxProduceWindow = 15 * time.Minute

// Handler relays SQS batches to Kafka. It implements aws-lambda-go's
// lambda.Handler, so the function decodes the event itself and can report
// a malformed record on its own instead of failing the whole batch.
type Handler struct {
	mapper   *Mapper
	producer Producer
	log      *slog.Logger
	margin   time.Duration
}

// NewHandler returns a handler that maps with c and produces with p.
func NewHandler(c Config, p Producer, log *slog.Logger) *Handler {
	return &Handler{mapper: NewMapper(c), producer: p, log: log, margin: c.DeadlineMargin}
}

// Invoke handles one Lambda invocation carrying an SQS event and returns
// the partial batch response. It returns an error, which fails the whole
// batch, only when the payload cannot be read record by record (see
// DecodeEvent).
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	log := h.requestLog(ctx)
	recs, errs, err := DecodeEvent(payload)
	if err != nil {
		log.Error("cannot read the batch; failing it whole so SQS retries every record", "error", err.Error(), "payloadBytes", len(payload))
		return nil, fmt.Errorf("decode SQS event: %w", err)
	}
	out := h.handle(ctx, log, recs, errs)
	b, err := json.Marshal(out.Response())
	if err != nil {
		return nil, fmt.Errorf("encode batch response: %w", err)
	}
	return b, nil
}

// Handle relays recs. errs, when not nil, holds per-record decoding errors
// (from DecodeEvent): those records fail without being produced.
func (h *Handler) Handle(ctx context.Context, recs []Record, errs []error) *Outcome {
	return h.handle(ctx, h.requestLog(ctx), recs, errs)
}

func (h *Handler) requestLog(ctx context.Context) *slog.Logger {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return h.log.With("requestId", lc.AwsRequestID)
	}
	return h.log
}

func (h *Handler) handle(ctx context.Context, log *slog.Logger, recs []Record, decodeErrs []error) *Outcome {
	out := &Outcome{
		MessageIDs: make([]string, len(recs)),
		Errs:       make([]error, len(recs)),
		Start:      time.Now(),
	}
	for i := range recs {
		out.MessageIDs[i] = recs[i].MessageID
	}
	if decodeErrs != nil {
		copy(out.Errs, decodeErrs)
	}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		out.Deadline = deadline
	}
	produceBy := produceDeadline(out.Start, deadline, hasDeadline, h.margin)

	// Map in batch order. In a FIFO queue, a record that fails before
	// producing blocks the rest of its message group.
	var blocked map[string]string // group -> messageId of its first failure
	msgs := make([]Message, len(recs))
	idx := make([]int, 0, len(recs))
	// One header array for the batch, carved per message.
	nh := 0
	for i := range recs {
		nh += HeaderCount(&recs[i])
	}
	headers := make([]Header, nh)
	for i := range recs {
		r := &recs[i]
		group := fifoGroup(r)
		if out.Errs[i] == nil && group != "" {
			if first, ok := blocked[group]; ok {
				out.Errs[i] = groupBlocked(r, first)
			}
		}
		if out.Errs[i] == nil {
			m := &msgs[len(idx)]
			n := HeaderCount(r)
			m.Headers, headers = headers[:0:n], headers[n:]
			out.Errs[i] = h.mapper.Map(r, m)
		}
		if out.Errs[i] != nil {
			if group != "" && blocked[group] == "" {
				if blocked == nil {
					blocked = map[string]string{}
				}
				blocked[group] = r.MessageID
			}
			continue
		}
		idx = append(idx, i)
	}
	msgs = msgs[:len(idx)]

	if len(msgs) > 0 {
		perr := make([]error, len(msgs))
		for j := range perr {
			perr[j] = errNotProduced
		}
		pctx, cancel := context.WithDeadline(ctx, produceBy)
		out.Cause = h.producer.Produce(pctx, msgs, perr)
		cancel()
		for j, i := range idx {
			out.Errs[i] = perr[j]
			if perr[j] == nil {
				out.Bytes += msgs[j].Size()
			}
		}
	}

	// A FIFO record acknowledged after an earlier failure in its group is
	// failed too, so SQS redelivers the group's tail in order.
	if blocked != nil || out.Failed() > 0 {
		failed := map[string]string{}
		for i := range recs {
			group := fifoGroup(&recs[i])
			if group == "" {
				continue
			}
			first, ok := failed[group]
			switch {
			case ok && out.Errs[i] == nil:
				out.Errs[i] = groupBlocked(&recs[i], first)
			case !ok && out.Errs[i] != nil:
				failed[group] = recs[i].MessageID
			}
		}
	}

	out.End = time.Now()
	h.logOutcome(log, out)
	return out
}

// produceDeadline leaves margin before the invocation's deadline for
// purging, logging and answering. When less than twice the margin remains,
// half the remaining time goes to producing and half to the rest.
// errNotProduced is where every produced record starts: only a delivery
// report that says acknowledged turns it into a success.
var errNotProduced = &ProduceError{Reason: ReasonNotProduced, Err: errors.New("no delivery report from the producer")}

func produceDeadline(now, deadline time.Time, ok bool, margin time.Duration) time.Time {
	if !ok {
		return now.Add(maxProduceWindow)
	}
	remaining := deadline.Sub(now)
	window := remaining - margin
	if window < remaining/2 {
		window = remaining / 2
	}
	return now.Add(window)
}

func fifoGroup(r *Record) string {
	if !r.FIFO() {
		return ""
	}
	return r.MessageGroupID
}

func groupBlocked(r *Record, first string) error {
	return &RecordError{MessageID: r.MessageID, Field: "attributes.MessageGroupId", Reason: ReasonGroupBlocked,
		Err: fmt.Errorf("record %s of message group %s failed earlier in this batch; retrying in order", first, quote(r.MessageGroupID))}
}

func (h *Handler) logOutcome(log *slog.Logger, out *Outcome) {
	for i, err := range out.Errs {
		if err != nil {
			log.Warn("record failed", "messageId", out.MessageIDs[i], "reason", ReasonOf(err), "error", err.Error())
		}
	}
	failed := out.Failed()
	if out.Cause != nil {
		log.Error("batch failed: "+out.Cause.Error(), "reason", ReasonOf(out.Cause), "records", len(out.Errs), "failed", failed)
	} else if err := commonCause(out.Errs); err != nil {
		log.Error("batch failed: every record failed with "+ReasonOf(err)+": "+err.Error(), "reason", ReasonOf(err), "records", len(out.Errs), "failed", failed)
	}
	attrs := []any{
		"records", len(out.Errs),
		"succeeded", len(out.Errs) - failed,
		"failed", failed,
		slog.Group("failedByReason", reasonCounts(out.FailedByReason())...),
		"bytes", out.Bytes,
		"durationMs", out.End.Sub(out.Start).Milliseconds(),
	}
	if !out.Deadline.IsZero() {
		attrs = append(attrs, "timeLeftMs", out.Deadline.Sub(out.End).Milliseconds())
	}
	log.Info("batch relayed", attrs...)
}

// commonCause returns the error of a batch in which every record failed
// for the same reason from Kafka (an unknown topic, say), or nil.
func commonCause(errs []error) error {
	if len(errs) < 2 {
		return nil
	}
	var first error
	for _, err := range errs {
		var pe *ProduceError
		if !errors.As(err, &pe) || pe.Reason == ReasonDeadline {
			return nil
		}
		if first == nil {
			first = err
		} else if ReasonOf(err) != ReasonOf(first) {
			return nil
		}
	}
	return first
}
