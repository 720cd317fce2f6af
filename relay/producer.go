package relay

import "context"

// Producer writes messages to Kafka. relay/kafka implements it on
// librdkafka.
type Producer interface {
	// Produce sends msgs and returns once each is acknowledged or failed,
	// or soon after ctx is done, never later than that by more than the
	// time needed to purge and collect the last delivery reports.
	//
	// errs has one entry per message and arrives filled with non-nil
	// errors. Produce sets errs[i] to nil only when Kafka acknowledged
	// msgs[i] with acks=all; it may replace an error with a more precise
	// one. The returned error is a cause that concerns the whole batch (no
	// broker reachable, authentication refused, a fatal producer error),
	// or nil.
	Produce(ctx context.Context, msgs []Message, errs []error) error
}
