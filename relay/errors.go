package relay

import (
	"errors"
	"fmt"

	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

// ErrNotSQSEvent is returned for a payload that is not an SQS event.
var ErrNotSQSEvent = sqsevent.ErrNotSQSEvent

// Reasons are short, stable codes saying why a record failed; logs and
// metrics count failures by them.
const (
	ReasonInvalidRecord   = "invalid_record"    // a field of the SQS record is malformed
	ReasonOversized       = "oversized"         // the body is over RELAY_MAX_MESSAGE_BYTES
	ReasonTopicNotAllowed = "topic_not_allowed" // the routing attribute names a topic off the allow-list
	ReasonGroupBlocked    = "group_blocked"     // FIFO: an earlier record of the same group failed
	ReasonDeadline        = "deadline"          // not acknowledged before the produce deadline
	ReasonBrokersDown     = "brokers_down"      // no broker reachable
	ReasonAuthFailed      = "auth_failed"       // the brokers refused authentication, or no token could be made
	ReasonTLSFailed       = "tls_failed"        // the TLS handshake with the brokers failed
	ReasonFatal           = "producer_fatal"    // librdkafka raised a fatal error
	ReasonNotProduced     = "not_produced"      // the producer returned without a report for the record
	ReasonInvalidEvent    = "invalid_event"     // the payload cannot be read record by record: the batch fails whole
	// ReasonThrottled: the brokers refused new connections over their rate
	// (MSK answers an IAM authentication over its per-broker quota with
	// "Too many connects"); librdkafka reconnects until the deadline.
	ReasonThrottled = "connection_throttled"
	// ReasonNotEnoughReplicas: a partition has fewer in-sync replicas than
	// min.insync.replicas, so acks=all could not be had by the deadline.
	ReasonNotEnoughReplicas = "not_enough_replicas"
)

// RecordError is bad input in one record: it names the record and the field.
type RecordError struct {
	MessageID string
	Field     string // the field in the SQS record, e.g. "messageAttributes.color.binaryValue"
	Reason    string // one of the Reason constants
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %s: %s: %v", e.MessageID, e.Field, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// ErrNoReport is where every message handed to the producer starts, in
// the handler and in the producer alike: only a delivery report that says
// acknowledged turns it into a success.
var ErrNoReport = &ProduceError{Reason: ReasonNotProduced, Err: errors.New("no delivery report from the producer")}

// ProduceError is why the producer could not get one message acknowledged.
type ProduceError struct {
	Reason string // a Reason constant, or a code derived from the Kafka error
	Err    error
}

func (e *ProduceError) Error() string { return e.Err.Error() }

func (e *ProduceError) Unwrap() error { return e.Err }

// ReasonOf returns the reason code carried by err, or "error".
func ReasonOf(err error) string {
	var re *RecordError
	if errors.As(err, &re) {
		return re.Reason
	}
	var pe *ProduceError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	var ie *InvalidSQSEvent
	if errors.As(err, &ie) {
		return ReasonInvalidEvent
	}
	return "error"
}

// quote shortens a value taken from input before it goes into an error, so
// an error names the value without echoing a whole payload.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// InvalidSQSEvent is the error the handler returns for a payload it cannot
// read record by record, which fails the whole batch. Lambda shows its
// type name as the invocation's errorType.
type InvalidSQSEvent struct {
	Err error // wraps ErrNotSQSEvent and the flaw
}

func (e *InvalidSQSEvent) Error() string { return "decode SQS event: " + e.Err.Error() }

func (e *InvalidSQSEvent) Unwrap() error { return e.Err }
