package relay

import (
	"fmt"
	"time"
	"unsafe"
)

// Metadata headers. ':' cannot appear in an SQS attribute name, so these
// never collide with the header of a message attribute.
const (
	HeaderPrefix         = "sqs:"
	HeaderMessageID      = HeaderPrefix + "message-id"      // SQS messageId: consumers drop duplicates by it
	HeaderSentTimestamp  = HeaderPrefix + "sent-timestamp"  // SentTimestamp, ms since the epoch
	HeaderReceiveCount   = HeaderPrefix + "receive-count"   // ApproximateReceiveCount
	HeaderSourceARN      = HeaderPrefix + "source-arn"      // eventSourceARN of the queue
	HeaderGroupID        = HeaderPrefix + "group-id"        // FIFO MessageGroupId, when present
	HeaderSequenceNumber = HeaderPrefix + "sequence-number" // FIFO SequenceNumber, when present
)

// Mapper turns records into Kafka messages as DESIGN.md's mapping says.
type Mapper struct {
	format    BodyFormat
	topic     string
	topicAttr string
	allowed   map[string]bool
	keyAttr   string
	maxBytes  int
}

// NewMapper returns the mapping configured by c.
func NewMapper(c Config) *Mapper {
	m := &Mapper{
		format:    c.BodyFormat,
		topic:     c.Topic,
		topicAttr: c.TopicAttribute,
		keyAttr:   c.KeyAttribute,
		maxBytes:  c.MaxMessageBytes,
		allowed:   make(map[string]bool, len(c.AllowedTopics)),
	}
	for _, t := range c.AllowedTopics {
		m.allowed[t] = true
	}
	return m
}

// HeaderCount is the number of headers Map gives r's message.
func HeaderCount(r *Record) int {
	n := len(r.Attributes) + 4
	if r.MessageGroupID != "" {
		n++
	}
	if r.SequenceNumber != "" {
		n++
	}
	if r.TraceHeader != "" {
		n += 2
	}
	return n
}

// Map fills msg from r, reusing msg's header slice. The message's value and
// attribute headers share r's bytes. An error is a *RecordError naming the
// field.
func (m *Mapper) Map(r *Record, msg *Message) error {
	env := &msg.env
	if err := env.unwrap(m.format, r); err != nil {
		return err
	}
	value, valueField := env.value, "body"
	if m.format == BodySNS {
		valueField = "body.Message"
	}
	if len(value) > m.maxBytes {
		return &RecordError{MessageID: r.MessageID, Field: valueField, Reason: ReasonOversized,
			Err: fmt.Errorf("%d bytes, over RELAY_MAX_MESSAGE_BYTES=%d", len(value), m.maxBytes)}
	}
	msg.Value = value

	msg.Topic = m.topic
	if m.topicAttr != "" {
		if a, inEnvelope, ok := attribute(r, env, m.topicAttr); ok {
			t := string(a.Value)
			if !m.allowed[t] {
				return &RecordError{MessageID: r.MessageID, Field: attributeField(env, inEnvelope, m.topicAttr), Reason: ReasonTopicNotAllowed,
					Err: fmt.Errorf("names topic %s, which is not on RELAY_ALLOWED_TOPICS", quote(t))}
			}
			msg.Topic = t
		}
	}

	msg.Key = nil
	if a, ok := m.keyAttribute(r, env); ok {
		msg.Key = a.Value
	} else if r.MessageGroupID != "" {
		msg.Key = stringBytes(r.MessageGroupID)
	}

	msg.Timestamp = time.Time{}
	if r.SentTimestamp != "" {
		ms, err := parseDecimal(r.SentTimestamp)
		if err != nil || ms < 0 {
			return &RecordError{MessageID: r.MessageID, Field: "attributes.SentTimestamp", Reason: ReasonInvalidRecord,
				Err: fmt.Errorf("%s is not milliseconds since the epoch", quote(r.SentTimestamp))}
		}
		msg.Timestamp = time.UnixMilli(ms)
	}

	h := msg.Headers[:0]
	for _, a := range r.Attributes {
		h = append(h, Header{Key: a.Name, Value: a.Value})
	}
	h = append(h,
		Header{Key: HeaderMessageID, Value: stringBytes(r.MessageID)},
		Header{Key: HeaderSentTimestamp, Value: stringBytes(r.SentTimestamp)},
		Header{Key: HeaderReceiveCount, Value: stringBytes(r.ReceiveCount)},
		Header{Key: HeaderSourceARN, Value: stringBytes(r.EventSourceARN)},
	)
	if r.MessageGroupID != "" {
		h = append(h, Header{Key: HeaderGroupID, Value: stringBytes(r.MessageGroupID)})
	}
	if r.SequenceNumber != "" {
		h = append(h, Header{Key: HeaderSequenceNumber, Value: stringBytes(r.SequenceNumber)})
	}
	h = append(h, env.headers...)
	if r.TraceHeader != "" {
		h = append(h, Header{Key: HeaderXRay, Value: stringBytes(r.TraceHeader)})
		if _, _, own := attribute(r, env, HeaderTraceparent); !own {
			if tp, ok := traceparent(&msg.traceparent, r.TraceHeader); ok {
				h = append(h, Header{Key: HeaderTraceparent, Value: tp})
			}
		}
	}
	msg.Headers = h
	return nil
}

func (m *Mapper) keyAttribute(r *Record, env *envelope) (*Attribute, bool) {
	if m.keyAttr == "" {
		return nil, false
	}
	a, _, ok := attribute(r, env, m.keyAttr)
	return a, ok
}

// attribute is r's message attribute called name or, without one, its
// envelope's (inEnvelope).
func attribute(r *Record, env *envelope, name string) (a *Attribute, inEnvelope, ok bool) {
	if a, ok := r.Attribute(name); ok {
		return a, false, true
	}
	if a, ok := env.attribute(name); ok {
		return a, true, true
	}
	return nil, false, false
}

// attributeField names an attribute attribute found, for an error.
func attributeField(env *envelope, inEnvelope bool, name string) string {
	if inEnvelope {
		return env.attrField + name
	}
	return "messageAttributes." + name
}

// stringBytes views s as bytes without copying, for header values that
// librdkafka copies and nothing writes.
func stringBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
