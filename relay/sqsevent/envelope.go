package sqsevent

import (
	"fmt"
)

// SNSNotification is what a relay reads of an SNS notification, the body
// an SNS subscription without raw message delivery writes to SQS. The
// signature fields are skipped: SQS's access policy vouches for the
// sender.
type SNSNotification struct {
	Type, MessageID, TopicARN, Timestamp []byte
	Message                              []byte
	HasMessage                           bool
	Subject                              []byte
	HasSubject                           bool
	// Attributes are the MessageAttributes in the order SNS wrote them:
	// String, Number and String.Array values as UTF-8, Binary decoded from
	// base64.
	Attributes []Attribute
}

// EventBridgeEvent is what a relay reads of an EventBridge event, the body
// a rule targeting SQS writes.
type EventBridgeEvent struct {
	ID, Source, DetailType, Time []byte
	HasDetail                    bool
}

// EnvelopeReader reads SNS notifications and EventBridge events from SQS
// bodies with the event decoder's scanner. What it returns stays valid
// and unchanged while the reader lives, so one reader serves a batch;
// it is not safe for concurrent use.
type EnvelopeReader struct {
	s                         scanner
	snsKeys, attrKeys, ebKeys keys
}

const (
	snsType = iota
	snsMessageID
	snsTopicARN
	snsTimestamp
	snsSubject
	snsMessage
	snsAttributes
)

const (
	ebID = iota
	ebSource
	ebDetailType
	ebTime
	ebDetail
)

func (d *EnvelopeReader) start(body []byte) {
	if d.snsKeys.n == 0 {
		d.snsKeys.init("Type", "MessageId", "TopicArn", "Timestamp", "Subject", "Message", "MessageAttributes")
		d.attrKeys.init("Type", "Value")
		d.ebKeys.init("id", "source", "detail-type", "time", "detail")
	}
	d.s.buf, d.s.lastAt, d.s.last, d.s.depth = body, 0, nil, 0
}

// SNS reads body into n. A field that is there but wrong comes back as
// field (e.g. "MessageAttributes.color.Value") and the error; a body
// that is not JSON, or not an object, with field "".
func (d *EnvelopeReader) SNS(body []byte, n *SNSNotification) (field string, err error) {
	*n = SNSNotification{Attributes: n.Attributes[:0]}
	err = d.top(body, &d.snsKeys, func(i, k int, key []byte) (int, error) {
		var dst *[]byte
		switch k {
		case snsType:
			dst = &n.Type
		case snsMessageID:
			dst = &n.MessageID
		case snsTopicARN:
			dst = &n.TopicARN
		case snsTimestamp:
			dst = &n.Timestamp
		case snsSubject:
			dst = &n.Subject
		case snsMessage:
			dst = &n.Message
		case snsAttributes:
			return d.snsAttributes(i, n, &field)
		default:
			return d.s.skip(i)
		}
		if j, isNull := d.s.null(i); isNull {
			return j, nil
		}
		n.HasSubject = n.HasSubject || k == snsSubject
		n.HasMessage = n.HasMessage || k == snsMessage
		return d.into(i, key, dst, &field)
	})
	return field, err
}

// snsAttributes reads the MessageAttributes object at i.
func (d *EnvelopeReader) snsAttributes(i int, n *SNSNotification, field *string) (int, error) {
	s := &d.s
	if j, isNull := s.null(i); isNull {
		return j, nil
	}
	if c, _ := s.peek(i); c != '{' {
		*field = "MessageAttributes"
		return i, fmt.Errorf("%s, want an object", s.kind(i))
	}
	return s.object(i, func(i int, name []byte) (int, error) {
		at := func(suffix string) string { return "MessageAttributes." + string(name) + suffix }
		if c, _ := s.peek(i); c != '{' {
			*field = at("")
			return i, fmt.Errorf("%s, want an object", s.kind(i))
		}
		var typ, value []byte
		var hasValue bool
		i, err := s.fields(i, &d.attrKeys, func(i, k int, key []byte) (int, error) {
			if k != 0 && k != 1 {
				return s.skip(i)
			}
			v, j, err := d.str(i)
			if _, ok := err.(kindError); ok {
				*field = at("." + string(key))
			}
			if k == 0 {
				typ = v
			} else {
				value, hasValue = v, true
			}
			return j, err
		})
		if err != nil {
			return i, err
		}
		switch string(typ) {
		case "String", "Number", "String.Array":
		case "Binary":
			if value, err = s.base64(value); err != nil {
				*field = at(".Value")
				return i, err
			}
		default:
			*field = at(".Type")
			if len(typ) == 0 {
				return i, fmt.Errorf("missing, want String, Number, String.Array or Binary")
			}
			return i, fmt.Errorf("%s, want String, Number, String.Array or Binary", quote(string(typ)))
		}
		if !hasValue {
			*field = at(".Value")
			return i, fmt.Errorf("missing")
		}
		n.Attributes = append(n.Attributes, Attribute{Name: bytesToString(name), DataType: bytesToString(typ), Value: value})
		return i, nil
	})
}

// EventBridge reads body into ev, reporting errors as SNS does.
func (d *EnvelopeReader) EventBridge(body []byte, ev *EventBridgeEvent) (field string, err error) {
	*ev = EventBridgeEvent{}
	err = d.top(body, &d.ebKeys, func(i, k int, key []byte) (int, error) {
		switch k {
		case ebID:
			return d.into(i, key, &ev.ID, &field)
		case ebSource:
			return d.into(i, key, &ev.Source, &field)
		case ebDetailType:
			return d.into(i, key, &ev.DetailType, &field)
		case ebTime:
			return d.into(i, key, &ev.Time, &field)
		case ebDetail:
			ev.HasDetail = true
		}
		return d.s.skip(i)
	})
	return field, err
}

// top reads body as one object whose keys ks knows, calling member for
// each, and checks that nothing but space follows it.
func (d *EnvelopeReader) top(body []byte, ks *keys, member func(i, k int, key []byte) (int, error)) error {
	d.start(body)
	i, err := d.s.fields(0, ks, member)
	if err != nil {
		return err
	}
	if i = d.s.ws(i); i < len(d.s.buf) {
		return d.s.syntax(i, "expected the end after the object")
	}
	return nil
}

// into reads the string at i into dst; a value of another type names key
// as the field.
func (d *EnvelopeReader) into(i int, key []byte, dst *[]byte, field *string) (int, error) {
	v, j, err := d.str(i)
	if _, ok := err.(kindError); ok {
		*field = string(key)
	}
	*dst = v
	return j, err
}

// str reads the string at i; a value of another type is a kindError,
// which the caller names the field of.
func (d *EnvelopeReader) str(i int) ([]byte, int, error) {
	s := &d.s
	if c, _ := s.peek(i); c != '"' {
		if j, err := s.skip(i); err != nil {
			return nil, j, err // not JSON: the body's error, not the field's
		}
		return nil, i, kindError(s.kind(i))
	}
	return s.str(i)
}

// kindError is a value of the wrong JSON type where a string belongs.
type kindError string

func (k kindError) Error() string { return string(k) + ", want a string" }
