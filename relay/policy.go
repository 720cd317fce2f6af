package relay

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// permanent holds the reasons that are the record's own fault: retrying it
// cannot help. Every other reason (the deadline, brokers down,
// authentication or TLS, not enough replicas, a fatal producer error, a
// record blocked behind another of its FIFO group, a Kafka error the relay
// does not know) is transient: the record may succeed on a later receive.
var permanent = map[string]bool{
	ReasonInvalidRecord:      true,
	ReasonOversized:          true,
	ReasonTopicNotAllowed:    true,
	"message_size_too_large": true, // the broker's MSG_SIZE_TOO_LARGE, or over the topic's max.message.bytes
	"invalid_message":        true, // the broker's CORRUPT_MESSAGE
}

// Permanent reports whether a record failed for reason can never succeed.
func Permanent(reason string) bool { return permanent[reason] }

// MaxVisibility is the longest visibility the relay sets: SQS refuses more
// than 12 hours from the receive, and a record reaches the relay up to a
// batching window (5 min) and a function timeout (15 min) after it.
const MaxVisibility = 12*time.Hour - 20*time.Minute

// Retry is the backoff of transiently failed records: after the batch,
// each one's visibility is set so that SQS redelivers it later, the longer
// the more often it was received.
//
// A record reaches the DLQ when its maxReceiveCount-th receive fails, so
// what keeps a healthy record out of it during an outage is the time its
// earlier receives wait: with the defaults and maxReceiveCount 5, 1, 4 and
// 16 minutes, then 11h40m before the last receive: 12h01m at least.
type Retry struct {
	// Base is the delay after the first receive; it quadruples with each
	// receive after that. Zero turns the backoff off: records come back
	// after the queue's visibility timeout (RELAY_RETRY_BASE, default 1m).
	Base time.Duration
	// Max caps a delay, and is the delay before the last receive, so that
	// a healthy record reaches the DLQ only after an outage longer than
	// Max plus the earlier delays (RELAY_RETRY_MAX, default 11h40m, the
	// most SQS allows).
	Max time.Duration
}

// Delay is the visibility to give a record failed transiently on its
// receives-th receive of a queue that dead-letters after maxReceives (0:
// unknown, or no DLQ). jitter in [0,1) spreads the retries of a batch
// over a quarter of the step, upwards, so that no delay is shorter than
// its step. Zero means leave the visibility alone: on the last receive,
// where the record goes to the DLQ once it is visible again.
func (r Retry) Delay(receives, maxReceives int, jitter float64) time.Duration {
	if r.Base <= 0 || receives < 1 || maxReceives > 0 && receives >= maxReceives {
		return 0
	}
	if maxReceives > 0 && receives == maxReceives-1 {
		return r.Max
	}
	d := r.Base
	for i := 1; i < receives && d < r.Max; i++ {
		d *= 4
	}
	return min(r.Max, d+time.Duration(jitter*float64(d/4)))
}

// Queue is what the relay needs of SQS after a batch: relay/sqs implements
// it on the AWS SDK. Each call is bounded by ctx, and answers per item: an
// item whose call failed or timed out is reported failed, never lost.
type Queue interface {
	// DeadLetter sends each record, with the reason it failed, to the
	// dead-letter queue; errs[i] is nil once SQS has accepted letters[i].
	DeadLetter(ctx context.Context, letters []DeadLetter) (errs []error)
	// SetVisibility sets each message's visibility timeout on the queue
	// sourceARN; errs[i] is nil once SQS has accepted changes[i].
	SetVisibility(ctx context.Context, sourceARN string, changes []VisibilityChange) (errs []error)
	// MaxReceiveCount is the maxReceiveCount of sourceARN's redrive
	// policy, or 0 when it has none.
	MaxReceiveCount(ctx context.Context, sourceARN string) (int, error)
}

// ErrSQSRefused marks an item SQS answered and refused (a message over
// its size limit, say), as opposed to no answer at all: only the latter
// says there may be no path to SQS.
var ErrSQSRefused = errors.New("SQS refused it")

// DeadLetter is a record to move to the dead-letter queue.
type DeadLetter struct {
	Record *Record
	Reason string // a Reason constant
	Err    string // the failure as logged
}

// VisibilityChange is one message's new visibility timeout.
type VisibilityChange struct {
	MessageID     string
	ReceiptHandle string
	Visibility    time.Duration
}

// jitter is the source of Retry.Delay's jitter; tests replace it.
var jitter = rand.Float64
