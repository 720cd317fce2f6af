package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// batch is one call to Produce. Its delivery channel holds a report for
// every message it produced, so librdkafka's poller never blocks on it,
// even for reports that arrive after Produce returned.
type batch struct {
	dr   chan kafka.Event
	wake chan struct{}
}

// Message states within a batch.
const (
	unsent uint8 = iota
	sent
	reported
)

// run is the state of one batch while it produces.
type run struct {
	s       *session
	b       *batch
	errs    []error
	idx     []int32 // idx[i] == i; &idx[i] is message i's opaque, so no allocation
	state   []uint8
	pending int
}

func (s *session) produce(ctx context.Context, msgs []relay.Message, errs []error) error {
	b := &batch{dr: make(chan kafka.Event, len(msgs)), wake: make(chan struct{}, 1)}
	s.register(b)
	defer s.unregister(b)
	r := &run{s: s, b: b, errs: errs, idx: make([]int32, len(msgs)), state: make([]uint8, len(msgs))}

	// One kafka.Message and header slice serve every call: Produce copies
	// them into librdkafka and keeps no reference.
	var km kafka.Message
	km.TopicPartition.Partition = kafka.PartitionAny
	var headers []kafka.Header
	for i := range msgs {
		m := &msgs[i]
		r.idx[i] = int32(i)
		headers = headers[:0]
		for _, h := range m.Headers {
			headers = append(headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		km.TopicPartition.Topic = &m.Topic
		km.Key, km.Value, km.Headers, km.Timestamp = m.Key, m.Value, headers, m.Timestamp
		km.Opaque = &r.idx[i]
		if err := r.enqueue(ctx, &km); err != nil {
			errs[i] = err
			if cause := r.stopCause(ctx); cause != nil {
				return r.abort(cause)
			}
			continue
		}
		r.state[i] = sent
		r.pending++
	}
	return r.wait(ctx)
}

// enqueue hands one message to librdkafka, waiting for room while its
// queue is full.
func (r *run) enqueue(ctx context.Context, km *kafka.Message) error {
	var bo backoff.BackOff // made only when the queue is full
	for {
		err := r.s.kp.Produce(km, r.b.dr)
		var ke kafka.Error
		if err == nil || !errors.As(err, &ke) || ke.Code() != kafka.ErrQueueFull {
			if err != nil {
				return produceError(err)
			}
			return nil
		}
		if bo == nil {
			bo = backoff.WithContext(&backoff.ExponentialBackOff{
				InitialInterval:     time.Millisecond,
				RandomizationFactor: 0.2,
				Multiplier:          2,
				MaxInterval:         50 * time.Millisecond,
				Stop:                backoff.Stop,
				Clock:               backoff.SystemClock,
			}, ctx)
			bo.Reset()
		}
		next := bo.NextBackOff()
		if next == backoff.Stop {
			return &relay.ProduceError{Reason: relay.ReasonDeadline, Err: fmt.Errorf("librdkafka queue full until the produce deadline: %w", err)}
		}
		t := time.NewTimer(next)
		select {
		case ev := <-r.b.dr:
			r.report(ev)
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// stopCause is why the batch must stop now, or nil.
func (r *run) stopCause(ctx context.Context) error {
	if err := r.s.fatalErr(); err != nil {
		return fatalCause(err)
	}
	if ctx.Err() != nil {
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

// wait collects delivery reports until every message is reported, the
// deadline passes, or a batch-level cause persists for the grace period.
func (r *run) wait(ctx context.Context) error {
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	var graceC <-chan time.Time
	checkTrouble := func() {
		if graceC == nil && r.s.currentTrouble() != nil {
			grace = time.NewTimer(r.s.grace)
			graceC = grace.C
		}
	}
	checkTrouble()
	for r.pending > 0 {
		select {
		case ev := <-r.b.dr:
			r.report(ev)
		case <-r.b.wake:
			if err := r.s.fatalErr(); err != nil {
				return r.abort(fatalCause(err))
			}
			checkTrouble()
		case <-graceC:
			graceC = nil
			if t := r.s.currentTrouble(); t != nil {
				return r.abort(&relay.ProduceError{Reason: t.reason, Err: t.err})
			}
		case <-ctx.Done():
			return r.abort(errDeadline)
		}
	}
	return nil
}

// report records one delivery report.
func (r *run) report(ev kafka.Event) {
	m, ok := ev.(*kafka.Message)
	if !ok {
		return
	}
	p, ok := m.Opaque.(*int32)
	if !ok || r.state[*p] != sent {
		return
	}
	i := *p
	r.state[i] = reported
	r.pending--
	if err := m.TopicPartition.Error; err != nil {
		r.errs[i] = produceError(err)
		return
	}
	r.errs[i] = nil
	r.s.acknowledged()
}

// abort purges the producer's queued and in-flight messages, collects the
// reports that follow, and fails every message still unreported with
// cause. A purged message may still have been written (at least once).
// The purge is producer-wide: a concurrent batch sees its messages
// reported as purged, and fails them.
func (r *run) abort(cause error) error {
	if r.pending > 0 {
		_ = r.s.kp.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
		t := time.NewTimer(drainTimeout)
	drain:
		for r.pending > 0 {
			select {
			case ev := <-r.b.dr:
				r.report(ev)
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
		if st == unsent && r.errs[i] != nil && relay.ReasonOf(r.errs[i]) == relay.ReasonNotProduced ||
			st == sent ||
			st == reported && r.errs[i] != nil && relay.ReasonOf(r.errs[i]) == "purged" {
			r.errs[i] = failure
		}
	}
	if cause == errDeadline {
		return nil // per-record failures say it; not a batch-level cause
	}
	return cause
}
