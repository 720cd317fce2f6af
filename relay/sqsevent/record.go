package sqsevent

// Record is one record of an SQS event as Lambda delivers it: the parts a
// relay needs to map it, head it and report on it.
type Record struct {
	MessageID string
	Body      []byte

	// System attributes, kept as SQS sends them (decimal strings); the
	// mapping parses what it needs and reports a bad value by name.
	SentTimestamp  string // milliseconds since the epoch
	ReceiveCount   string // ApproximateReceiveCount
	MessageGroupID string // FIFO queues only
	SequenceNumber string // FIFO queues only
	TraceHeader    string // AWSTraceHeader: the X-Ray trace header, when the sender had one

	EventSourceARN string
	// ReceiptHandle names this receive of the message: the relay changes
	// its visibility with it.
	ReceiptHandle string

	// Attributes are the message attributes in name order.
	Attributes []Attribute
}

// Attribute is one SQS message attribute with its value decoded: String
// and Number values as UTF-8, Binary values as raw bytes.
type Attribute struct {
	Name     string
	DataType string // "String", "Number", "Binary", optionally with a ".label" suffix
	Value    []byte
}

// Attribute returns the message attribute called name, if the record has it.
func (r *Record) Attribute(name string) (*Attribute, bool) {
	return FindAttribute(r.Attributes, name)
}

// FindAttribute returns the attribute of attrs called name, if there is one.
func FindAttribute(attrs []Attribute, name string) (*Attribute, bool) {
	for i := range attrs {
		if attrs[i].Name == name {
			return &attrs[i], true
		}
	}
	return nil, false
}

// FIFO reports whether the record comes from a FIFO queue, whose ARN ends
// in ".fifo".
func (r *Record) FIFO() bool {
	n := len(r.EventSourceARN)
	return n >= 5 && r.EventSourceARN[n-5:] == ".fifo"
}
