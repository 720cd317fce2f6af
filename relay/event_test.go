package relay

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeEvent(t *testing.T) {
	recs, errs, err := DecodeEvent([]byte(`{"Records":[{
		"messageId":"m1","body":"hello","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q.fifo",
		"attributes":{"SentTimestamp":"1700000000000","ApproximateReceiveCount":"3","MessageGroupId":"g","SequenceNumber":"7"},
		"messageAttributes":{
			"z":{"dataType":"String","stringValue":"last"},
			"a":{"dataType":"Binary","binaryValue":"AAH/"},
			"n":{"dataType":"Number.int","stringValue":"42","stringListValues":[],"binaryListValues":[]}}}]}`))
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	r := recs[0]
	if r.MessageID != "m1" || string(r.Body) != "hello" || r.SentTimestamp != "1700000000000" || r.ReceiveCount != "3" ||
		r.MessageGroupID != "g" || r.SequenceNumber != "7" || !r.FIFO() {
		t.Errorf("record %+v", r)
	}
	var names []string
	for _, a := range r.Attributes {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "a,n,z" {
		t.Errorf("attributes in order %v, want name order", names)
	}
	if string(r.Attributes[0].Value) != "\x00\x01\xff" || string(r.Attributes[1].Value) != "42" {
		t.Errorf("attribute values %q %q", r.Attributes[0].Value, r.Attributes[1].Value)
	}
}

func TestDecodeEventRecordErrors(t *testing.T) {
	for _, tc := range []struct {
		record string
		want   string
	}{
		{`{"messageId":"m1"}`, "record m1: body: missing"},
		{`{"messageId":"m1","body":3}`, "record m1: record: json: cannot unmarshal number"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary","binaryValue":"%%%"}}}`, "record m1: messageAttributes.a.binaryValue: not base64"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary"}}}`, "record m1: messageAttributes.a.binaryValue: missing"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String"}}}`, "record m1: messageAttributes.a.stringValue: missing"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Blob","stringValue":"v"}}}`, `record m1: messageAttributes.a.dataType: "Blob" is not String, Number or Binary`},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringListValues":["v"]}}}`, "record m1: messageAttributes.a.stringListValues: list values are not supported"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary","binaryListValues":["AA=="]}}}`, "record m1: messageAttributes.a.binaryListValues: list values are not supported"},
		{`{"messageId":"m1","body":"x","attributes":{"SentTimestamp":5}}`, "record m1: record: json: cannot unmarshal number"},
	} {
		recs, errs, err := DecodeEvent([]byte(`{"Records":[` + tc.record + `]}`))
		if err != nil {
			t.Errorf("%s: whole event failed: %v", tc.record, err)
			continue
		}
		var re *RecordError
		if !errors.As(errs[0], &re) || re.MessageID != "m1" || recs[0].MessageID != "m1" {
			t.Errorf("%s: error %v is not a RecordError for m1", tc.record, errs[0])
			continue
		}
		if !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%s: %q does not contain %q", tc.record, errs[0], tc.want)
		}
	}
}

func TestDecodeEventSalvagesFIFOGroup(t *testing.T) {
	recs, errs, err := DecodeEvent([]byte(`{"Records":[{"messageId":"m1","body":1,"eventSourceARN":"arn:aws:sqs:r:1:q.fifo","attributes":{"MessageGroupId":"g"}}]}`))
	if err != nil || errs[0] == nil {
		t.Fatal(err, errs)
	}
	if recs[0].MessageGroupID != "g" || !recs[0].FIFO() {
		t.Errorf("malformed FIFO record lost its group: %+v", recs[0])
	}
}

func TestDecodeEventWholeFailures(t *testing.T) {
	for _, payload := range []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"relay":"doctor"}`, `{"Records":{}}`,
		`{"Records":[{"body":"no id"}]}`, `{"Records":[{"messageId":"","body":"x"}]}`, `{"Records":[5]}`,
	} {
		if _, _, err := DecodeEvent([]byte(payload)); !errors.Is(err, ErrNotSQSEvent) {
			t.Errorf("%s: err %v, want ErrNotSQSEvent", payload, err)
		}
	}
	recs, _, err := DecodeEvent([]byte(`{"Records":[]}`))
	if err != nil || len(recs) != 0 {
		t.Errorf("empty batch: %v %v", recs, err)
	}
}
