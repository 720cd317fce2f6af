package sqsevent

import (
	"errors"
	"fmt"
)

// ErrNotSQSEvent is returned for a payload that is not an SQS event, or
// that cannot be read record by record.
var ErrNotSQSEvent = errors.New("payload is not an SQS event")

// FieldError is a malformed field of one record: it names the record and
// the field; the rest of the event is read on.
type FieldError struct {
	MessageID string
	Field     string // e.g. "messageAttributes.color.binaryValue"
	Err       error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("record %s: %s: %v", e.MessageID, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// quote shortens a value taken from input before it goes into an error, so
// an error names the value without echoing a whole payload.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…(%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}
