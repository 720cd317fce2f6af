package relay

import (
	"fmt"

	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

// BodyFormat names what an SQS body holds (RELAY_BODY_FORMAT).
type BodyFormat string

const (
	// BodyRaw: the body is the Kafka value, as is.
	BodyRaw BodyFormat = "raw"
	// BodySNS: the body is an SNS notification, as an SNS subscription
	// without raw message delivery writes it; its Message is the value.
	BodySNS BodyFormat = "sns"
	// BodyEventBridge: the body is an EventBridge event, as a rule
	// targeting the queue writes it; the whole event is the value.
	BodyEventBridge BodyFormat = "eventbridge"
)

// Envelope metadata headers, under the relay's prefix like the SQS ones.
const (
	HeaderSNSTopicARN     = HeaderPrefix + "sns-topic-arn"     // the notification's TopicArn
	HeaderSNSMessageID    = HeaderPrefix + "sns-message-id"    // its MessageId
	HeaderSNSTimestamp    = HeaderPrefix + "sns-timestamp"     // its Timestamp, as SNS wrote it (ISO 8601)
	HeaderSNSSubject      = HeaderPrefix + "sns-subject"       // its Subject, when it has one
	HeaderEventID         = HeaderPrefix + "event-id"          // the EventBridge event's id
	HeaderEventSource     = HeaderPrefix + "event-source"      // its source
	HeaderEventDetailType = HeaderPrefix + "event-detail-type" // its detail-type
	HeaderEventTime       = HeaderPrefix + "event-time"        // its time, when it has one
)

// envelope is a body unwrapped. A Message holds one, reused from record
// to record; what it points into is the record's body or the reader's
// memory, never overwritten while the batch lives.
type envelope struct {
	value []byte
	// attrs are looked in after the SQS message attributes for the key,
	// the topic and a producer's traceparent: an SNS notification's
	// MessageAttributes, an EventBridge event's id, source, detail-type and
	// time.
	attrs     []Attribute
	attrField string   // how an error names attrs[i]: attrField + name
	headers   []Header // what the envelope adds to the message's headers

	reader sqsevent.EnvelopeReader
	sns    sqsevent.SNSNotification
	eb     sqsevent.EventBridgeEvent
}

// unwrap reads r's body as format into e (raw, or unset: the body as the
// value, nothing else). An error is a *RecordError naming the field.
func (e *envelope) unwrap(format BodyFormat, r *Record) error {
	e.attrs, e.headers = e.attrs[:0], e.headers[:0]
	switch format {
	case BodySNS:
		return e.unwrapSNS(r)
	case BodyEventBridge:
		return e.unwrapEventBridge(r)
	}
	e.value = r.Body
	return nil
}

func (e *envelope) unwrapSNS(r *Record) error {
	n := &e.sns
	if field, err := e.reader.SNS(r.Body, n); err != nil {
		return envelopeError(r, field, "an SNS notification", err)
	}
	switch {
	case string(n.Type) != "Notification":
		return badEnvelope(r, "body.Type", "%s, want \"Notification\" (with raw message delivery on, set RELAY_BODY_FORMAT=raw)", quoteField(n.Type))
	case !n.HasMessage:
		return badEnvelope(r, "body.Message", "missing")
	case len(n.TopicARN) == 0:
		return badEnvelope(r, "body.TopicArn", "missing")
	case len(n.MessageID) == 0:
		return badEnvelope(r, "body.MessageId", "missing")
	}
	e.value = n.Message
	e.attrField = "body.MessageAttributes."
	e.attrs = append(e.attrs, n.Attributes...)
	for _, a := range n.Attributes {
		e.headers = append(e.headers, Header{Key: a.Name, Value: a.Value})
	}
	e.headers = append(e.headers,
		Header{Key: HeaderSNSTopicARN, Value: n.TopicARN},
		Header{Key: HeaderSNSMessageID, Value: n.MessageID},
		Header{Key: HeaderSNSTimestamp, Value: n.Timestamp},
	)
	if n.HasSubject {
		e.headers = append(e.headers, Header{Key: HeaderSNSSubject, Value: n.Subject})
	}
	return nil
}

func (e *envelope) unwrapEventBridge(r *Record) error {
	ev := &e.eb
	if field, err := e.reader.EventBridge(r.Body, ev); err != nil {
		return envelopeError(r, field, "an EventBridge event", err)
	}
	switch {
	case len(ev.ID) == 0:
		return badEnvelope(r, "body.id", "missing")
	case len(ev.Source) == 0:
		return badEnvelope(r, "body.source", "missing")
	case len(ev.DetailType) == 0:
		return badEnvelope(r, "body.detail-type", "missing")
	case !ev.HasDetail:
		return badEnvelope(r, "body.detail", "missing")
	}
	e.value = r.Body
	e.attrField = "body."
	e.attrs = append(e.attrs,
		Attribute{Name: "id", DataType: "String", Value: ev.ID},
		Attribute{Name: "source", DataType: "String", Value: ev.Source},
		Attribute{Name: "detail-type", DataType: "String", Value: ev.DetailType},
	)
	e.headers = append(e.headers,
		Header{Key: HeaderEventID, Value: ev.ID},
		Header{Key: HeaderEventSource, Value: ev.Source},
		Header{Key: HeaderEventDetailType, Value: ev.DetailType},
	)
	if len(ev.Time) > 0 {
		e.attrs = append(e.attrs, Attribute{Name: "time", DataType: "String", Value: ev.Time})
		e.headers = append(e.headers, Header{Key: HeaderEventTime, Value: ev.Time})
	}
	return nil
}

// attribute is the envelope's attribute called name, if it has one.
func (e *envelope) attribute(name string) (*Attribute, bool) {
	return sqsevent.FindAttribute(e.attrs, name)
}

// envelopeError is a reader's error as the record's: on field, or on the
// whole body when it is not what the format says (what).
func envelopeError(r *Record, field, what string, err error) error {
	if field != "" {
		return badEnvelope(r, "body."+field, "%w", err)
	}
	return badEnvelope(r, "body", "not %s: %w", what, err)
}

func badEnvelope(r *Record, field, format string, args ...any) error {
	return &RecordError{MessageID: r.MessageID, Field: field, Reason: ReasonInvalidRecord, Err: fmt.Errorf(format, args...)}
}

// quoteField quotes a value read from a body for an error, or says it is
// missing.
func quoteField(v []byte) string {
	if len(v) == 0 {
		return "missing"
	}
	return quote(string(v))
}
