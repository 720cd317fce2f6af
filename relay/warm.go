package relay

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

// warmRecord is an SQS record as Lambda delivers one, with the attributes
// a real one carries.
const warmRecord = `{"messageId":"00000000-0000-4000-8000-%012d","receiptHandle":"AQEBwarm","body":"{\"warm\":%d}",` +
	`"attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1700000000000","SenderId":"AIDAWARM","ApproximateFirstReceiveTimestamp":"1700000000000"},` +
	`"messageAttributes":{"type":{"stringValue":"warm","stringListValues":[],"binaryListValues":[],"dataType":"String"}},` +
	`"md5OfBody":"0","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:000000000000:warm","awsRegion":"us-east-1"}`

// warmRecords is how many records Warm decodes.
const warmRecords = 100

// Warm decodes and maps a built-in event, and encodes a response, producing
// and logging nothing: the function's init calls it so that the first
// batch does not pay for the first use of that code and its memory (page
// faults, lazily built tables).
func (h *Handler) Warm() {
	var sb strings.Builder
	sb.WriteString(`{"Records":[`)
	for i := range warmRecords {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, warmRecord, i, i)
	}
	sb.WriteString(`]}`)
	var msg Message
	out := &Outcome{}
	_ = sqsevent.Stream([]byte(sb.String()), func(r *Record, err error) {
		if err == nil {
			if n := HeaderCount(r); cap(msg.Headers) < n {
				msg.Headers = make([]Header, 0, max(n, 16))
			}
			err = h.mapper.Map(r, &msg)
		}
		out.MessageIDs = append(out.MessageIDs, r.MessageID)
		out.Errs = append(out.Errs, err)
	})
	_, _ = json.Marshal(out.Response())
}
