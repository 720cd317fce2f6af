package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unsafe"

	"github.com/cenkalti/backoff/v4"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// Message states within a batch.
const (
	sent uint8 = iota + 1
	reported
)

// clockShare is how many messages share one reading of the clock for
// their latency: a reading costs about 25 ns, latencies are reported in
// milliseconds, and that many messages are handed over, or their reports
// read, within microseconds of each other.
const clockShare = 8

// slotChunk is how many opaque slots are allocated at a time: pointers to
// them identify messages in delivery reports without an allocation each,
// and chunks keep them stable as a batch grows.
const slotChunk = 1024

// batch is one relay batch while it produces. Its delivery channel is read on
// every Add and in Wait; reports that arrive after Wait returned are
// drained by a goroutine, so librdkafka's poller never blocks on them.
type batch struct {
	s       *instance
	ctx     context.Context
	log     *slog.Logger // the batch's, with its request id
	release func()
	dr      chan kafka.Event
	wake    chan struct{}

	km     kafka.Message // reused: Produce copies it into librdkafka
	slots  [][]int32
	state  []uint8
	errs   []error
	sentAt []int64         // per message, monotonic nanoseconds since start
	lat    []time.Duration // of acknowledged messages
	t0     time.Time
	// sendClock is the clock reading that sendUses more messages share.
	sendClock time.Duration
	sendUses  int
	pending   int
	failed    []int    // indexes of the messages reported failed, in report order
	failedOut int      // how many of failed Failures has returned
	stopped   error    // once set, Add refuses with it
	topics    []string // the topics produced to, for a diagnosis at the deadline
	lastTopic string
	lastLimit topicLimits // lastTopic's, zero if unknown
	// stale counts the messages stamped before their topic's retention,
	// for one warning at the end of the batch naming the last such topic.
	stale      int
	staleTopic string
	staleLimit time.Duration // staleTopic's retention.ms
	oldest     time.Time
	done       bool
}

var _ relay.Batch = (*batch)(nil)

// batchSlices are a finished batch's buffers, kept by the instance for
// its next batch: for 10,000 messages they take about 400 KB, which
// allocating and zeroing again cost about 0.15 ms a 6 MB event
// (docs/performance.md).
type batchSlices struct {
	dr     chan kafka.Event // nil unless empty, with no report still to come
	slots  [][]int32        // with dr only: late reports point into them
	state  []uint8
	errs   []error
	sentAt []int64
	lat    []time.Duration
	failed []int
}

func (s *instance) start(ctx context.Context, sizeHint int, release func()) *batch {
	r := &batch{s: s, ctx: ctx, log: relay.LogFrom(ctx), release: release, wake: make(chan struct{}, 1), t0: time.Now()}
	if sp := s.spare.Swap(nil); sp != nil && cap(sp.state) >= sizeHint {
		r.state, r.errs, r.sentAt, r.lat, r.failed = sp.state, sp.errs, sp.sentAt, sp.lat, sp.failed
		if sp.dr != nil && cap(sp.dr) >= sizeHint {
			r.dr, r.slots = sp.dr, sp.slots
		}
	} else {
		r.state, r.errs, r.sentAt = make([]uint8, 0, sizeHint), make([]error, 0, sizeHint), make([]int64, 0, sizeHint)
	}
	if r.dr == nil {
		r.dr = make(chan kafka.Event, sizeHint)
	}
	r.km.TopicPartition.Partition = kafka.PartitionAny
	s.register(r)
	return r
}

// Recycle implements relay.Recycler: the instance keeps the batch's
// buffers for its next batch. Its delivery channel and opaque slots go
// only if every report came and was read: a late one would be counted
// for the next batch's message in the same slot.
func (r *batch) Recycle() {
	if !r.done {
		return
	}
	clear(r.errs)
	sp := &batchSlices{state: r.state[:0], errs: r.errs[:0], sentAt: r.sentAt[:0], lat: r.lat[:0], failed: r.failed[:0]}
	if r.pending == 0 && len(r.dr) == 0 {
		sp.dr, sp.slots = r.dr, r.slots
	}
	r.s.spare.Store(sp)
}

// Add implements relay.Batch.
func (r *batch) Add(m *relay.Message) error {
	if r.stopped == nil {
		r.stopped = r.stopCause()
	}
	if r.stopped != nil {
		return r.stopped
	}
	r.drain()
	i := len(r.state)
	if i%slotChunk == 0 && i/slotChunk == len(r.slots) { // a recycled batch's slots serve again
		r.slots = append(r.slots, make([]int32, slotChunk))
	}
	slot := &r.slots[i/slotChunk][i%slotChunk]
	*slot = int32(i)
	if m.Topic != r.lastTopic {
		r.noteTopic(m.Topic)
	}
	if r.lastLimit.maxBytes > 0 {
		if n := batchBytes(m); n > r.lastLimit.maxBytes {
			return &relay.ProduceError{Reason: "message_size_too_large", Err: fmt.Errorf(
				"a record batch of this message alone takes about %d bytes, over topic %s's max.message.bytes %d: the broker would refuse it, and every message batched with it",
				n, m.Topic, r.lastLimit.maxBytes)}
		}
	}
	if r.lastLimit.retention > 0 && !m.Timestamp.IsZero() && r.t0.Sub(m.Timestamp) > r.lastLimit.retention {
		if r.stale++; r.oldest.IsZero() || m.Timestamp.Before(r.oldest) {
			r.oldest = m.Timestamp
		}
		r.staleTopic, r.staleLimit = m.Topic, r.lastLimit.retention
	}
	r.km.TopicPartition.Topic = &m.Topic
	r.km.Key, r.km.Value, r.km.Headers, r.km.Timestamp = m.Key, m.Value, kafkaHeaders(m.Headers), m.Timestamp
	r.km.Opaque = slot
	if err := r.enqueue(); err != nil {
		if cause := r.stopCause(); cause != nil {
			r.stopped = cause
			return cause
		}
		return err
	}
	r.state = append(r.state, sent)
	r.errs = append(r.errs, relay.ErrNoReport)
	if r.sendUses == 0 {
		r.sendClock, r.sendUses = time.Since(r.t0), clockShare
	}
	r.sendUses--
	r.sentAt = append(r.sentAt, int64(r.sendClock))
	r.pending++
	return nil
}

// kafkaHeaders views hs as the Go client's headers, without copying them:
// Produce copies them into C memory before it returns. The conversion in
// the blank assignment compiles only while both types have the same
// fields, so the same layout.
func kafkaHeaders(hs []relay.Header) []kafka.Header {
	return unsafe.Slice((*kafka.Header)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))
}

var _ = kafka.Header(relay.Header{})

// batchBytes is about what a record batch holding m alone takes on the
// wire: Kafka's batch header (61 bytes), the record's own framing and its
// headers' lengths, rounded up.
func batchBytes(m *relay.Message) int {
	return 61 + 32 + m.Size() + 10*len(m.Headers)
}

func (r *batch) noteTopic(t string) {
	r.lastTopic = t
	r.lastLimit = r.s.topicLimitsOf(t)
	if !slices.Contains(r.topics, t) {
		r.topics = append(r.topics, t)
	}
}

// drain records the reports already waiting, without blocking.
func (r *batch) drain() {
	// Only this batch's goroutine receives from r.dr until Wait returns,
	// so a report counted here is there to take.
	if len(r.dr) > 0 {
		r.reportWaiting(<-r.dr)
	}
}

// reportWaiting records ev and the reports already waiting behind it.
func (r *batch) reportWaiting(ev kafka.Event) {
	now := time.Since(r.t0)
	r.report(ev, now)
	for n := 1; len(r.dr) > 0; n++ {
		if n%clockShare == 0 {
			now = time.Since(r.t0)
		}
		r.report(<-r.dr, now)
	}
}

// enqueue hands r.km to librdkafka, waiting for room while its queue is
// full.
func (r *batch) enqueue() error {
	var bo backoff.BackOff // made only when the queue is full
	for {
		err := r.s.kp.Produce(&r.km, r.dr)
		if err == nil {
			return nil
		}
		if !queueFull(err) {
			return produceError(err)
		}
		if bo == nil {
			bo = backoff.WithContext(&backoff.ExponentialBackOff{
				InitialInterval:     time.Millisecond,
				RandomizationFactor: 0.2,
				Multiplier:          2,
				MaxInterval:         50 * time.Millisecond,
				Stop:                backoff.Stop,
				Clock:               backoff.SystemClock,
			}, r.ctx)
			bo.Reset()
		}
		next := bo.NextBackOff()
		if next == backoff.Stop {
			return &relay.ProduceError{Reason: relay.ReasonDeadline, Err: fmt.Errorf("librdkafka queue full until the produce deadline: %w", err)}
		}
		r.sendUses = 0 // the clock is read afresh after a wait
		t := time.NewTimer(next)
		select {
		case ev := <-r.dr:
			r.reportWaiting(ev)
		case <-t.C:
		case <-r.ctx.Done():
		}
		t.Stop()
	}
}

// queueFull reports whether err is librdkafka's full queue. The
// kafka.Error that errors.As fills escapes to the heap: declared here, it
// is allocated for a failed Produce only, not for every message.
func queueFull(err error) bool {
	var ke kafka.Error
	return errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull
}

// stopCause is why the batch must take no more messages, or nil.
func (r *batch) stopCause() error {
	if err := r.s.fatalErr(); err != nil {
		return fatalCause(err)
	}
	if r.ctx.Err() != nil {
		return errDeadline
	}
	return nil
}

// errDeadline fails what the deadline cut short. It is per record, not a
// batch-level cause: part of the batch may have been acknowledged.
var errDeadline = &relay.ProduceError{Reason: relay.ReasonDeadline, Err: errors.New("not acknowledged before the produce deadline")}

func fatalCause(err error) error {
	return &relay.ProduceError{Reason: relay.ReasonFatal, Err: fmt.Errorf("fatal producer error: %w", err)}
}

// Wait implements relay.Batch: it collects delivery reports until every
// message is reported, the deadline passes, or a batch-level cause
// persists for the grace period.
func (r *batch) Wait() ([]error, error) {
	if r.done {
		return r.errs, nil
	}
	r.done = true
	defer r.release()
	defer r.s.unregister(r)
	if r.pending > 0 {
		r.s.sendNow()
	}
	cause := r.wait()
	if r.stale > 0 {
		r.log.Warn("records stamped before their topic's retention.ms: Kafka acknowledges them, then deletes them with their log segment once nothing newer shares it; keep retention.ms above the queue's retention",
			"topic", r.staleTopic, "records", r.stale, "retentionMs", r.staleLimit.Milliseconds(), "oldestTimestamp", r.oldest.UTC().Format(time.RFC3339))
	}
	if r.pending > 0 {
		go drainLate(r.dr, r.pending, r.s.done)
	}
	return r.errs, cause
}

func (r *batch) wait() error {
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	var graceC <-chan time.Time
	checkTrouble := func() {
		if t := r.s.currentTrouble(); graceC == nil && t != nil && !t.waits {
			grace = time.NewTimer(r.s.grace)
			graceC = grace.C
		}
	}
	checkTrouble()
	for r.pending > 0 {
		select {
		case ev := <-r.dr:
			r.reportWaiting(ev)
		case <-r.wake:
			if err := r.s.fatalErr(); err != nil {
				return r.abort(fatalCause(err))
			}
			checkTrouble()
		case <-graceC:
			graceC = nil
			if t := r.s.currentTrouble(); t != nil && !t.waits {
				return r.abort(&relay.ProduceError{Reason: t.reason, Err: t.err})
			}
		case <-r.ctx.Done():
			// A deadline shorter than the grace must not hide a
			// batch-level cause seen since the last acknowledgement.
			if t := r.s.currentTrouble(); t != nil {
				return r.abort(&relay.ProduceError{Reason: t.reason, Err: t.err})
			}
			// librdkafka retries NOT_ENOUGH_REPLICAS silently until the
			// deadline: ask the cluster whether that is why.
			if err := r.s.replicaShortfall(r.topics, diagnoseTimeout); err != nil {
				return r.abort(&relay.ProduceError{Reason: relay.ReasonNotEnoughReplicas, Err: err})
			}
			return r.abort(errDeadline)
		}
	}
	if r.stopped != nil && r.stopped != errDeadline {
		return r.stopped
	}
	return nil
}

// report records one delivery report, received at now since the start.
func (r *batch) report(ev kafka.Event, now time.Duration) {
	m, ok := ev.(*kafka.Message)
	if !ok {
		return
	}
	p, ok := m.Opaque.(*int32)
	if !ok || int(*p) >= len(r.state) || r.state[*p] != sent {
		return
	}
	i := *p
	r.state[i] = reported
	r.pending--
	if err := m.TopicPartition.Error; err != nil {
		r.errs[i] = produceError(err)
		r.failed = append(r.failed, int(i))
		return
	}
	r.errs[i] = nil
	r.lat = append(r.lat, now-time.Duration(r.sentAt[i]))
	r.s.acknowledged()
}

// Failures implements relay.Batch.
func (r *batch) Failures() []int {
	if !r.done {
		r.drain()
	}
	f := r.failed[r.failedOut:]
	r.failedOut = len(r.failed)
	return f
}

// Latencies implements relay.Batch.
func (r *batch) Latencies() []time.Duration { return r.lat }

// abort purges the producer's queued and in-flight messages, collects the
// reports that follow, and fails every message still unreported with
// cause. A purged message may still have been written (at least once).
// The purge is producer-wide: a concurrent batch sees its messages
// reported as purged, and fails them.
func (r *batch) abort(cause error) error {
	if r.pending > 0 {
		_ = r.s.kp.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
		t := time.NewTimer(drainTimeout)
	drain:
		for r.pending > 0 {
			select {
			case ev := <-r.dr:
				r.reportWaiting(ev)
			case <-t.C:
				break drain
			}
		}
		t.Stop()
	}
	failure, ok := cause.(*relay.ProduceError)
	if !ok {
		failure = &relay.ProduceError{Reason: relay.ReasonOf(cause), Err: cause}
	}
	for i, st := range r.state {
		if st == sent || st == reported && r.errs[i] != nil && relay.ReasonOf(r.errs[i]) == "purged" {
			r.errs[i] = failure
		}
	}
	if cause == errDeadline {
		return nil // per-record failures say it; not a batch-level cause
	}
	return cause
}

// drainLate reads the reports of a finished batch until all n came or the
// producer closed.
func drainLate(dr chan kafka.Event, n int, closed <-chan struct{}) {
	for n > 0 {
		select {
		case <-dr:
			n--
		case <-closed:
			return
		}
	}
}

// failedBatch is a batch that cannot produce at all: no producer.
type failedBatch struct{ err error }

func (f failedBatch) Add(*relay.Message) error   { return f.err }
func (f failedBatch) Wait() ([]error, error)     { return nil, f.err }
func (f failedBatch) Latencies() []time.Duration { return nil }
func (f failedBatch) Failures() []int            { return nil }
