package sqsevent

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEnvelopeReader: the reader never panics, and where encoding/json
// reads a notification's strings, it reads the same ones.
func FuzzEnvelopeReader(f *testing.F) {
	for _, seed := range []string{
		`{"Type":"Notification","MessageId":"m","TopicArn":"arn","Message":"{\"a\":\"caf\u00e9\"}","Timestamp":"t","Subject":null,` +
			`"MessageAttributes":{"b":{"Type":"Binary","Value":"AAE="},"s":{"Type":"String","Value":"v"}}}`,
		`{"Type":"Notification","Message":"\ud83d\ude00 \\ \/","Signature":"x"}`,
		`{"id":"1","source":"s","detail-type":"d","time":"t","detail":{"a":[1,{"b":null}]}}`,
		`{"Message":12}`, `{"MessageAttributes":{"x":{"Type":"Binary","Value":"*"}}}`, `[]`, `{"id":`, `{} x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d EnvelopeReader
		var n SNSNotification
		_, snsErr := d.SNS(body, &n)
		var ev EventBridgeEvent
		d.EventBridge(body, &ev)

		var want struct {
			Type, MessageId, TopicArn, Timestamp string
			Message, Subject                     *string
		}
		if json.Unmarshal(body, &want) != nil || snsErr != nil {
			return
		}
		for _, c := range []struct {
			name      string
			got, want []byte
		}{
			{"Type", n.Type, []byte(want.Type)}, {"MessageId", n.MessageID, []byte(want.MessageId)},
			{"TopicArn", n.TopicARN, []byte(want.TopicArn)}, {"Timestamp", n.Timestamp, []byte(want.Timestamp)},
		} {
			if !bytes.Equal(c.got, c.want) {
				t.Errorf("%s %q, encoding/json %q", c.name, c.got, c.want)
			}
		}
		if want.Message != nil && (!n.HasMessage || string(n.Message) != *want.Message) {
			t.Errorf("Message %q (%v), encoding/json %q", n.Message, n.HasMessage, *want.Message)
		}
	})
}

// TestEnvelopeReaderKeepsValues: what one body gave stays unchanged after
// the reader reads others, so a batch's messages can point into it.
func TestEnvelopeReaderKeepsValues(t *testing.T) {
	var d EnvelopeReader
	var n SNSNotification
	if _, err := d.SNS([]byte(`{"Type":"Notification","Message":"first \"one\"","MessageAttributes":{"b":{"Type":"Binary","Value":"AQI="}}}`), &n); err != nil {
		t.Fatal(err)
	}
	msg, bin := n.Message, n.Attributes[0].Value
	for range 3000 { // past an arena block
		if _, err := d.SNS([]byte(`{"Type":"Notification","Message":"later \"message\" with escapes to fill the arena","MessageAttributes":{"b":{"Type":"Binary","Value":"/////w=="}}}`), &n); err != nil {
			t.Fatal(err)
		}
	}
	if string(msg) != `first "one"` || !bytes.Equal(bin, []byte{1, 2}) {
		t.Errorf("first body's values now %q and %v", msg, bin)
	}
}
