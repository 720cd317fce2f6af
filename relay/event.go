package relay

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrNotSQSEvent is returned for a payload that is not an SQS event.
var ErrNotSQSEvent = errors.New("payload is not an SQS event")

// DecodeEvent reads an SQS event as Lambda delivers it.
//
// It fails as a whole (err != nil) only when no record can be reported on
// its own: the payload is not JSON, has no Records array, or a record has no
// messageId. A record that has a messageId but is otherwise malformed comes
// back with its messageId and a *RecordError in errs at the same index.
func DecodeEvent(payload []byte) (recs []Record, errs []error, err error) {
	var ev struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotSQSEvent, err)
	}
	if ev.Records == nil {
		return nil, nil, fmt.Errorf("%w: no Records array", ErrNotSQSEvent)
	}
	recs = make([]Record, len(ev.Records))
	errs = make([]error, len(ev.Records))
	for i, raw := range ev.Records {
		id, rerr := decodeRecord(raw, &recs[i])
		if id == "" {
			return nil, nil, fmt.Errorf("%w: record %d has no messageId, so it cannot be reported on its own", ErrNotSQSEvent, i)
		}
		recs[i].MessageID = id
		errs[i] = rerr
	}
	return recs, errs, nil
}

type wireRecord struct {
	MessageID         string                   `json:"messageId"`
	Body              *string                  `json:"body"`
	Attributes        map[string]string        `json:"attributes"`
	MessageAttributes map[string]wireAttribute `json:"messageAttributes"`
	EventSourceARN    string                   `json:"eventSourceARN"`
}

type wireAttribute struct {
	StringValue      *string           `json:"stringValue"`
	BinaryValue      *string           `json:"binaryValue"`
	StringListValues []json.RawMessage `json:"stringListValues"`
	BinaryListValues []json.RawMessage `json:"binaryListValues"`
	DataType         string            `json:"dataType"`
}

// decodeRecord fills r from one record's JSON and returns its messageId,
// which is "" only when the record cannot be identified.
func decodeRecord(raw []byte, r *Record) (string, error) {
	var w wireRecord
	if err := json.Unmarshal(raw, &w); err != nil {
		// Malformed, but maybe still identifiable: fail it alone, and keep
		// its queue and group so a FIFO group still blocks behind it.
		id := salvage(raw, r)
		return id, &RecordError{MessageID: id, Field: "record", Reason: ReasonInvalidRecord, Err: err}
	}
	if w.MessageID == "" {
		return "", nil
	}
	r.SentTimestamp = w.Attributes["SentTimestamp"]
	r.ReceiveCount = w.Attributes["ApproximateReceiveCount"]
	r.MessageGroupID = w.Attributes["MessageGroupId"]
	r.SequenceNumber = w.Attributes["SequenceNumber"]
	r.EventSourceARN = w.EventSourceARN
	bad := func(field string, err error) (string, error) {
		return w.MessageID, &RecordError{MessageID: w.MessageID, Field: field, Reason: ReasonInvalidRecord, Err: err}
	}
	if w.Body == nil {
		return bad("body", errors.New("missing"))
	}
	r.Body = []byte(*w.Body)
	if len(w.MessageAttributes) == 0 {
		return w.MessageID, nil
	}
	names := make([]string, 0, len(w.MessageAttributes))
	for name := range w.MessageAttributes {
		names = append(names, name)
	}
	sort.Strings(names)
	r.Attributes = make([]Attribute, len(names))
	for i, name := range names {
		a := w.MessageAttributes[name]
		field := "messageAttributes." + name
		v, err := a.value()
		if err != nil {
			var fe *fieldErr
			if errors.As(err, &fe) {
				field += "." + fe.field
			}
			return bad(field, err)
		}
		r.Attributes[i] = Attribute{Name: name, DataType: a.DataType, Value: v}
	}
	return w.MessageID, nil
}

type fieldErr struct {
	field string
	err   error
}

func (e *fieldErr) Error() string { return e.err.Error() }
func (e *fieldErr) Unwrap() error { return e.err }

// value is the attribute's scalar value for its data type. SQS reserves
// the list fields and never fills them; they are ignored beside a scalar
// value, and an attribute carrying only lists is rejected rather than
// relayed without its value.
func (a *wireAttribute) value() ([]byte, error) {
	if a.StringValue == nil && a.BinaryValue == nil {
		switch {
		case len(a.StringListValues) > 0:
			return nil, &fieldErr{"stringListValues", errors.New("list values are not supported (SQS reserves them) and there is no scalar value")}
		case len(a.BinaryListValues) > 0:
			return nil, &fieldErr{"binaryListValues", errors.New("list values are not supported (SQS reserves them) and there is no scalar value")}
		}
	}
	base, _, _ := strings.Cut(a.DataType, ".")
	switch base {
	case "String", "Number":
		if a.StringValue == nil {
			return nil, &fieldErr{"stringValue", fmt.Errorf("missing for dataType %s", quote(a.DataType))}
		}
		return []byte(*a.StringValue), nil
	case "Binary":
		if a.BinaryValue == nil {
			return nil, &fieldErr{"binaryValue", fmt.Errorf("missing for dataType %s", quote(a.DataType))}
		}
		b, err := base64.StdEncoding.DecodeString(*a.BinaryValue)
		if err != nil {
			return nil, &fieldErr{"binaryValue", fmt.Errorf("not base64: %w", err)}
		}
		if b == nil {
			b = []byte{} // an empty Binary value stays a present, empty header
		}
		return b, nil
	default:
		return nil, &fieldErr{"dataType", fmt.Errorf("%s is not String, Number or Binary", quote(a.DataType))}
	}
}

// salvage reads what it can of a record that did not decode: each field on
// its own, so one bad field does not hide the others.
func salvage(raw []byte, r *Record) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return ""
	}
	var id string
	_ = json.Unmarshal(top["messageId"], &id)
	_ = json.Unmarshal(top["eventSourceARN"], &r.EventSourceARN)
	var attrs map[string]json.RawMessage
	if json.Unmarshal(top["attributes"], &attrs) == nil {
		_ = json.Unmarshal(attrs["MessageGroupId"], &r.MessageGroupID)
	}
	return id
}
