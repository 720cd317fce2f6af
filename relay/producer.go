package relay

import (
	"context"
	"log/slog"
	"time"
)

type logKey struct{}

// WithLog returns ctx carrying log, the batch's logger (with its request
// id), for the producer's own lines about the batch.
func WithLog(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, log)
}

// LogFrom returns the logger WithLog put in ctx, or nil.
func LogFrom(ctx context.Context) *slog.Logger {
	log, _ := ctx.Value(logKey{}).(*slog.Logger)
	return log
}

// Producer writes messages to Kafka. relay/kafka implements it on
// librdkafka.
type Producer interface {
	// Start begins a batch whose produce deadline is ctx's. sizeHint is the
	// expected number of messages (it sizes buffers, it is no limit).
	Start(ctx context.Context, sizeHint int) Batch
}

// Batch is one batch being produced: messages are handed over as the
// records are decoded, so producing overlaps decoding.
type Batch interface {
	// Add hands msg to the producer without waiting for Kafka. The
	// producer copies it, so msg may be reused at once. An error means msg
	// was not enqueued and fails alone.
	Add(msg *Message) error
	// Wait returns once every added message is acknowledged or failed, or
	// soon after the deadline: never later than that by more than the time
	// needed to purge and collect the last delivery reports. errs[k] is for
	// the k-th successful Add and is nil only when Kafka acknowledged it
	// with acks=all. cause concerns the whole batch (no broker reachable,
	// authentication refused, a fatal producer error), or is nil.
	Wait() (errs []error, cause error)
	// Failures returns the indexes (in Add order) of the messages reported
	// failed since the last call, without waiting: a FIFO group is blocked
	// as soon as a failure in it is known.
	Failures() []int
	// Latencies are the produce latencies of the acknowledged messages,
	// from Add to the acknowledgement; valid after Wait.
	Latencies() []time.Duration
}

// Recycler is a Batch whose buffers may serve the producer's next batch
// once nothing reads its results. The handler calls Recycle after it has
// answered; the Batch is not used again.
type Recycler interface {
	Recycle()
}
