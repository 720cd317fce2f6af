package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/sqs-msk-relay/relay/relay/sqsevent"
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
	cpuShare float64 // of one CPU, from the function's memory size

	// Metrics, if set, receives each batch's metrics in CloudWatch EMF.
	Metrics *Metrics
	// Diagnose, if set, answers a diagnostic event ({"relay":"doctor"})
	// with its report as the invocation's result.
	Diagnose func(ctx context.Context) any

	// Queue, if set, is SQS for the failure policy (policy.go): after a
	// batch, transient failures are backed off as Retry says, and
	// permanent ones are sent to the DLQ when DeadLetters is set.
	Queue       Queue
	Retry       Retry
	DeadLetters bool
	sqs         sqsState

	// spare holds the last batch's per-record slices for the next: for a
	// 10,000-record event they take about 480 KB, which allocating and
	// zeroing again cost about 0.2 ms an event (docs/performance.md).
	spare atomic.Pointer[runSlices]
}

// runSlices are a batch's per-record slices, kept across invocations.
type runSlices struct {
	ids   []string
	errs  []error
	added []int
	sizes []int
	// For the failure policy: made on first use, since a handler without
	// a Queue never fills them.
	handles  []string
	receives []int32
}

// isDiagnostic reports whether payload is {"relay":"doctor"}.
func isDiagnostic(payload []byte) bool {
	if len(payload) > 64 || !bytes.Contains(payload, []byte(`"relay"`)) {
		return false
	}
	var ev struct {
		Relay string `json:"relay"`
	}
	return json.Unmarshal(payload, &ev) == nil && ev.Relay == "doctor"
}

// NewHandler returns a handler that maps with c and produces with p.
func NewHandler(c Config, p Producer, log *slog.Logger) *Handler {
	return &Handler{mapper: NewMapper(c), producer: p, log: log, margin: c.DeadlineMargin, cpuShare: cpuShare(c.FunctionMemoryMB),
		Retry: Retry{Base: c.RetryBase, Max: c.RetryMax}, DeadLetters: c.DLQURL != ""}
}

// Invoke handles one Lambda invocation carrying an SQS event and returns
// the partial batch response. Records are produced as they are decoded
// (on a second goroutine for large events, see sqsevent.Stream).
// It returns an error, which fails the whole batch, only when the payload
// cannot be read record by record (see DecodeEvent); records produced
// before such a flaw was found may then reach Kafka twice (at least once).
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	log := h.requestLog(ctx)
	if h.Diagnose != nil && isDiagnostic(payload) {
		log.Info("diagnostic event: running the doctor")
		return json.Marshal(h.Diagnose(ctx))
	}
	// A record takes at least a few hundred bytes of the event (ids, receipt
	// handle, digests, attributes): enough to size the slices, which grow
	// if a batch is denser.
	records := max(16, min(len(payload)/256, maxBatchRecords))
	return h.invoke(ctx, log, records, func(each func(*Record, error)) ([]byte, error) {
		return payload, sqsevent.Stream(payload, each)
	})
}

// InvokeArriving is Invoke for an event still arriving (the function's
// Runtime API loop hands over large ones so): records are decoded and
// produced as their bytes come, overlapping the event's transfer.
func (h *Handler) InvokeArriving(ctx context.Context, ev sqsevent.Arriving) ([]byte, error) {
	buf, complete, err := ev.Wait(sqsevent.PipelineMinBytes)
	if err != nil {
		return nil, fmt.Errorf("receive the event: %w", err)
	}
	if complete {
		return h.Invoke(ctx, buf)
	}
	// Its length is not known until it has come (AWS sends it chunked):
	// it is sized as the largest, so that the deadline's margin holds for
	// 10,000 records.
	return h.invoke(ctx, h.requestLog(ctx), maxBatchRecords, func(each func(*Record, error)) ([]byte, error) {
		err := sqsevent.StreamArriving(ev, each)
		all, _, _ := ev.Wait(math.MaxInt)
		return all, err
	})
}

// maxBatchRecords is the most records an event holds: SQS's largest batch.
const maxBatchRecords = 10000

// invoke relays the records stream hands on and answers. stream returns
// the whole event once read; records is about how many it holds.
func (h *Handler) invoke(ctx context.Context, log *slog.Logger, records int, stream func(each func(*Record, error)) ([]byte, error)) ([]byte, error) {
	b := h.begin(ctx, log, records)
	defer h.recycle(b)
	payload, err := stream(b.record)
	b.payload = payload
	if err != nil {
		// Settle what was handed over, and count it in the summary and
		// the metrics: records before the flaw may be in Kafka already
		// (SQS retries them all: at least once). An event that did not
		// arrive whole stops the runtime loop too.
		if errors.Is(err, sqsevent.ErrNotSQSEvent) {
			err = &InvalidSQSEvent{Err: err}
		}
		b.unreadable = err
		b.finish()
		return nil, err
	}
	out := b.finish()
	resp, err := json.Marshal(out.Response())
	if err != nil {
		return nil, fmt.Errorf("encode batch response: %w", err)
	}
	return resp, nil
}

func (h *Handler) requestLog(ctx context.Context) *slog.Logger {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return h.log.With("requestId", lc.AwsRequestID)
	}
	return h.log
}

// batchRun is one batch in progress: records are mapped and handed to the
// producer in batch order as they arrive.
type batchRun struct {
	h      *Handler
	log    *slog.Logger
	out    *Outcome
	batch  Batch
	cancel context.CancelFunc
	msg    Message // reused: the producer copies each message
	sizes  []int   // per added message, for the byte count
	added  []int   // record index of each added message
	fifo   fifoOrder
	// unreadable is set when the payload could not be read to its end: the
	// batch fails whole, whatever was acknowledged.
	unreadable error

	// For the failure policy, when the handler has a Queue: the event, and
	// each record's receipt handle and receive count.
	payload   []byte
	sourceARN string
	handles   []string
	receives  []int32
}

func (h *Handler) begin(ctx context.Context, log *slog.Logger, sizeHint int) *batchRun {
	out := &Outcome{Start: time.Now()}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		out.Deadline = deadline
	}
	pctx, cancel := context.WithDeadline(WithLog(ctx, log), produceDeadline(out.Start, deadline, hasDeadline, h.marginFor(sizeHint)))
	s := h.spare.Swap(nil) // nil while another batch runs, or if none ran yet
	if s == nil || cap(s.ids) < sizeHint {
		s = &runSlices{ids: make([]string, 0, sizeHint), errs: make([]error, 0, sizeHint), added: make([]int, 0, sizeHint), sizes: make([]int, 0, sizeHint)}
	}
	out.MessageIDs, out.Errs = s.ids, s.errs
	return &batchRun{h: h, log: log, out: out, batch: h.producer.Start(pctx, sizeHint), cancel: cancel,
		added: s.added, sizes: s.sizes, handles: s.handles, receives: s.receives}
}

// recycle keeps b's per-record slices for the next batch, emptied, and
// lets the producer keep its own, once the invocation has answered:
// nothing reads them after.
func (h *Handler) recycle(b *batchRun) {
	ids, errs := b.out.MessageIDs, b.out.Errs
	clear(ids) // the strings point into the event, the errors hold records' causes
	clear(errs)
	clear(b.handles)
	h.spare.Store(&runSlices{ids: ids[:0], errs: errs[:0], added: b.added[:0], sizes: b.sizes[:0],
		handles: b.handles[:0], receives: b.receives[:0]})
	if r, ok := b.batch.(Recycler); ok {
		r.Recycle()
	}
}

// record maps one record and hands it to the producer, or fails it.
func (b *batchRun) record(r *Record, err error) {
	if fe, ok := err.(*sqsevent.FieldError); ok {
		err = &RecordError{MessageID: fe.MessageID, Field: fe.Field, Reason: ReasonInvalidRecord, Err: fe.Err}
	}
	i := len(b.out.MessageIDs)
	b.out.MessageIDs = append(b.out.MessageIDs, r.MessageID)
	if b.h.Queue != nil {
		if b.sourceARN == "" {
			b.sourceARN = r.EventSourceARN
		}
		if b.handles == nil {
			b.handles, b.receives = make([]string, 0, cap(b.out.MessageIDs)), make([]int32, 0, cap(b.out.MessageIDs))
		}
		b.handles = append(b.handles, r.ReceiptHandle)
		b.receives = append(b.receives, receiveCount(r))
	}
	group := fifoGroup(r)
	b.fifo.track(i, group, cap(b.out.MessageIDs))
	if err == nil && group != "" {
		b.fifo.blockFailed(b.batch.Failures(), b.added, b.out.MessageIDs)
		err = b.fifo.blockedBy(r.MessageID, group)
	}
	if err == nil {
		if n := HeaderCount(r); cap(b.msg.Headers) < n {
			b.msg.Headers = make([]Header, 0, max(n, 16))
		}
		err = b.h.mapper.Map(r, &b.msg)
	}
	if err == nil {
		err = b.batch.Add(&b.msg)
	}
	if err == nil {
		b.added = append(b.added, i)
		b.sizes = append(b.sizes, b.msg.Size())
		b.out.Errs = append(b.out.Errs, ErrNoReport) // until a report says otherwise
		return
	}
	b.out.Errs = append(b.out.Errs, err)
	// A record the DLQ will take does not hold back its group: its later
	// records are produced, and failed after all if the DLQ refuses it.
	if !b.h.DeadLetters || b.h.Queue == nil || !Permanent(ReasonOf(err)) {
		b.fifo.block(group, r.MessageID)
	}
}

// finish waits for the producer, applies FIFO group blocking to what
// failed in delivery, and logs the outcome.
func (b *batchRun) finish() *Outcome {
	out := b.out
	perr, cause := b.batch.Wait()
	b.cancel()
	latencies := b.batch.Latencies()
	out.Cause = cause
	for k, i := range b.added {
		if k < len(perr) {
			out.Errs[i] = perr[k]
		}
		if out.Errs[i] == nil {
			out.Bytes += b.sizes[k]
		}
	}

	if b.unreadable == nil && b.h.Queue != nil && out.Failed() > 0 {
		b.settle()
	} else {
		b.fifo.apply(out)
	}

	out.End = time.Now()
	if b.unreadable != nil {
		produced := len(out.Errs) - out.Failed()
		b.log.Error("cannot read the batch; failing it whole so SQS retries every record", "error", b.unreadable.Error(),
			"recordsRead", len(out.Errs), "producedBeforeTheFlaw", produced)
		out.Cause = b.unreadable // succeeded still counts what Kafka has
	}
	b.h.logOutcome(b.log, out)
	b.h.Metrics.Emit(out, latencies)
	return out
}

// afterDeadlinePerRecord is the work left per record after the produce
// deadline on a full CPU: its purge and delivery report, its share of the
// response, the logs and the metrics. Measured at 128 MB (7.2% of a CPU),
// 10,000 records against a stalled broker took 1 s to purge and 0.6 s
// from there to the answer (TestBinaryAt128MBAnswersInTime). 10 µs a
// record answered 0.1-0.9 s early there alone, but 74 ms late once with
// the real brokers' JVMs running beside it (make test in a clean clone);
// 15 µs keeps 2.1 s beyond the 1 s margin at 128 MB, 0.15 s on a full CPU.
const afterDeadlinePerRecord = 15 * time.Microsecond

// cpuShare is the share of one CPU Lambda gives a function of memoryMB
// (one vCPU at 1,769 MB); a full CPU when unknown.
func cpuShare(memoryMB int) float64 {
	if memoryMB <= 0 {
		return 1
	}
	return min(1, float64(memoryMB)/1769)
}

// marginFor is the time kept after the produce deadline for a batch of
// about records: RELAY_DEADLINE_MARGIN, plus the per-record work at the
// function's share of a CPU.
func (h *Handler) marginFor(records int) time.Duration {
	return h.margin + time.Duration(float64(records)*float64(afterDeadlinePerRecord)/h.cpuShare)
}

// produceDeadline leaves margin before the invocation's deadline for
// purging, logging and answering. When less than twice the margin remains,
// half the remaining time goes to producing and half to the rest.
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

// perRecordLines is how many failed records a batch logs a line each for;
// above it, failures are logged grouped by reason and error, their ids
// idsPerLine to a line. Ten thousand lines cost a 128 MB function (7% of a
// core) about a second after the deadline; grouped, a few lines do.
const (
	perRecordLines = 100
	idsPerLine     = 500
)

func (h *Handler) logOutcome(log *slog.Logger, out *Outcome) {
	failed := out.Failed()
	if failed <= perRecordLines {
		for i, err := range out.Errs {
			if err != nil {
				log.Warn("record failed", "messageId", out.MessageIDs[i], "reason", ReasonOf(err), "error", err.Error())
			}
		}
	} else {
		logGrouped(log, out)
	}
	if out.Cause != nil {
		log.Error("batch failed: "+out.Cause.Error(), "reason", ReasonOf(out.Cause), "records", len(out.Errs), "failed", failed)
	} else if err := commonCause(out.Errs); err != nil {
		log.Error("batch failed: every record failed with "+ReasonOf(err)+": "+err.Error(), "reason", ReasonOf(err), "records", len(out.Errs), "failed", failed)
	}
	logDeadLettered(log, out)
	attrs := []any{
		"records", len(out.Errs),
		"succeeded", out.Succeeded(),
		"failed", failed,
		slog.Group("failedByReason", reasonCounts(out.FailedByReason())...),
		"bytes", out.Bytes,
		"durationMs", out.End.Sub(out.Start).Milliseconds(),
		"goMemoryBytes", goMemory(),
	}
	if len(out.DeadLettered) > 0 {
		attrs = append(attrs, "deadLettered", len(out.DeadLettered), slog.Group("deadLetteredByReason", reasonCounts(out.DeadLetteredByReason())...))
	}
	if len(out.BackedOff) > 0 {
		attrs = append(attrs, "backedOff", len(out.BackedOff), slog.Group("backedOffByDelay", reasonCounts(out.BackedOffByDelay())...))
	}
	if !out.Deadline.IsZero() {
		attrs = append(attrs, "timeLeftMs", out.Deadline.Sub(out.End).Milliseconds())
	}
	log.Info("batch relayed", attrs...)
}

// logDeadLettered logs the records the relay moved to the DLQ: a line
// each, or above perRecordLines, a line per reason with their ids.
func logDeadLettered(log *slog.Logger, out *Outcome) {
	if len(out.DeadLettered) <= perRecordLines {
		for _, d := range out.DeadLettered {
			log.Warn("record dead-lettered", "messageId", out.MessageIDs[d.Index], "reason", d.Reason, "error", d.Err.Error())
		}
		return
	}
	ids := map[string][]string{}
	for _, d := range out.DeadLettered {
		ids[d.Reason] = append(ids[d.Reason], out.MessageIDs[d.Index])
	}
	for reason, list := range ids {
		for start := 0; start < len(list); start += idsPerLine {
			part := list[start:min(len(list), start+idsPerLine)]
			log.Warn("records dead-lettered", "reason", reason, "count", len(part), "messageIds", part)
		}
	}
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

// logGrouped logs a batch's failures as "records failed" lines, one per
// reason and error text (in order of first appearance) and per idsPerLine
// of their messageIds.
func logGrouped(log *slog.Logger, out *Outcome) {
	type group struct {
		reason, err string
		ids         []string
	}
	var groups []*group
	index := map[error]*group{} // most failures share one error value
	byText := map[string]*group{}
	for i, err := range out.Errs {
		if err == nil {
			continue
		}
		g := index[err]
		if g == nil {
			text := err.Error()
			if g = byText[ReasonOf(err)+"\x00"+text]; g == nil {
				g = &group{reason: ReasonOf(err), err: text}
				byText[g.reason+"\x00"+text] = g
				groups = append(groups, g)
			}
			if isComparable(err) {
				index[err] = g
			}
		}
		g.ids = append(g.ids, out.MessageIDs[i])
	}
	for _, g := range groups {
		for start := 0; start < len(g.ids); start += idsPerLine {
			ids := g.ids[start:min(len(g.ids), start+idsPerLine)]
			log.Warn("records failed", "reason", g.reason, "error", g.err, "count", len(ids), "messageIds", ids)
		}
	}
}

// isComparable reports whether err can be a map key: a pointer, as the
// relay's errors are.
func isComparable(err error) bool {
	return reflect.TypeOf(err).Comparable()
}
