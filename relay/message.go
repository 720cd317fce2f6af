package relay

import "time"

// Message is one Kafka message, ready to produce.
type Message struct {
	Topic     string
	Key       []byte // nil: no key, the partitioner picks a partition at random
	Value     []byte
	Headers   []Header
	Timestamp time.Time // zero: librdkafka stamps the produce time

	traceparent [traceparentLen]byte // where Map writes a derived traceparent
	env         envelope             // the body unwrapped, for RELAY_BODY_FORMAT sns and eventbridge
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Size is the number of bytes the message carries: key, value, header
// names and values.
func (m *Message) Size() int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
