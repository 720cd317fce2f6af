package relay

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// variant is the JSON fixture file with edit applied to it as an object.
func variant(t *testing.T, file string, edit func(map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}

// headerMap is msg's headers by key; a repeated key keeps its values in order.
func headerMap(msg *Message) map[string][]string {
	out := map[string][]string{}
	for _, h := range msg.Headers {
		out[h.Key] = append(out[h.Key], string(h.Value))
	}
	return out
}

const snsFile, ebFile = "testdata/sns-notification.json", "testdata/eventbridge-event.json"

func TestMapSNS(t *testing.T) {
	xray := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	for _, tc := range []struct {
		name    string
		config  Config
		body    []byte
		rec     func(*Record)
		value   string
		key     string
		topic   string
		headers map[string][]string // each must be there, as given; a nil value: must be absent
	}{
		{name: "as SNS writes it", body: variant(t, snsFile, nil), value: `{"order":"o-1","note":"café \"quoted\""}`, topic: "events",
			headers: map[string][]string{
				"customer": {"c-42"}, "priority": {"7"}, "blob": {"\x00\x01\x02\xff"}, "tags": {`["a","b"]`},
				HeaderSNSTopicARN: {"arn:aws:sns:eu-west-1:123456789012:orders"}, HeaderSNSMessageID: {"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"},
				HeaderSNSTimestamp: {"2026-12-02T00:54:06.655Z"}, HeaderSNSSubject: {"order placed"}, HeaderMessageID: {"m1"},
			}},
		{name: "no attributes, no subject", body: variant(t, snsFile, func(m map[string]any) { delete(m, "MessageAttributes"); delete(m, "Subject") }),
			value: `{"order":"o-1","note":"café \"quoted\""}`, topic: "events",
			headers: map[string][]string{HeaderSNSSubject: nil, "customer": nil, HeaderSNSTopicARN: {"arn:aws:sns:eu-west-1:123456789012:orders"}}},
		{name: "key and topic from the envelope", config: Config{KeyAttribute: "customer", TopicAttribute: "route", AllowedTopics: []string{"audit"}},
			body: variant(t, snsFile, func(m map[string]any) {
				m["MessageAttributes"].(map[string]any)["route"] = map[string]any{"Type": "String", "Value": "audit"}
			}), value: `{"order":"o-1","note":"café \"quoted\""}`, key: "c-42", topic: "audit"},
		{name: "the SQS attribute first", config: Config{KeyAttribute: "customer"}, body: variant(t, snsFile, nil),
			rec: func(r *Record) {
				r.Attributes = []Attribute{{Name: "customer", DataType: "String", Value: []byte("sqs-c")}}
			},
			value: `{"order":"o-1","note":"café \"quoted\""}`, key: "sqs-c", topic: "events",
			headers: map[string][]string{"customer": {"sqs-c", "c-42"}}},
		{name: "trace derived through the envelope", body: variant(t, snsFile, nil), rec: func(r *Record) { r.TraceHeader = xray },
			value: `{"order":"o-1","note":"café \"quoted\""}`, topic: "events",
			headers: map[string][]string{HeaderXRay: {xray}, HeaderTraceparent: {"00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"}}},
		{name: "the publisher's traceparent wins", rec: func(r *Record) { r.TraceHeader = xray },
			body: variant(t, snsFile, func(m map[string]any) {
				m["MessageAttributes"].(map[string]any)["traceparent"] = map[string]any{"Type": "String", "Value": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			}), value: `{"order":"o-1","note":"café \"quoted\""}`, topic: "events",
			headers: map[string][]string{HeaderXRay: {xray}, HeaderTraceparent: {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.config
			c.BodyFormat, c.Topic, c.MaxMessageBytes = BodySNS, "events", 1000
			r := &Record{MessageID: "m1", Body: tc.body, SentTimestamp: "1700000000123", ReceiveCount: "1", EventSourceARN: "arn:q"}
			if tc.rec != nil {
				tc.rec(r)
			}
			var msg Message
			if err := NewMapper(c).Map(r, &msg); err != nil {
				t.Fatal(err)
			}
			if string(msg.Value) != tc.value || string(msg.Key) != tc.key || msg.Topic != tc.topic {
				t.Errorf("value %q key %q topic %q, want %q %q %q", msg.Value, msg.Key, msg.Topic, tc.value, tc.key, tc.topic)
			}
			if msg.Timestamp.UnixMilli() != 1700000000123 {
				t.Errorf("timestamp %v, want SentTimestamp's", msg.Timestamp)
			}
			got := headerMap(&msg)
			for k, want := range tc.headers {
				if strings.Join(got[k], "|") != strings.Join(want, "|") || (want == nil) != (got[k] == nil) {
					t.Errorf("header %s: %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestMapEventBridge(t *testing.T) {
	body := variant(t, ebFile, nil)
	c := Config{BodyFormat: BodyEventBridge, Topic: "events", MaxMessageBytes: 1000, TopicAttribute: "detail-type", AllowedTopics: []string{"OrderPlaced"}}
	var msg Message
	if err := NewMapper(c).Map(&Record{MessageID: "m1", Body: body}, &msg); err != nil {
		t.Fatal(err)
	}
	if string(msg.Value) != string(body) {
		t.Errorf("value %q, want the whole event", msg.Value)
	}
	if msg.Topic != "OrderPlaced" {
		t.Errorf("topic %q, want the one detail-type names", msg.Topic)
	}
	got := headerMap(&msg)
	for k, v := range map[string]string{HeaderEventID: "6a7e8feb-b491-4cf7-a9f1-bf3703467718", HeaderEventSource: "com.example.orders",
		HeaderEventDetailType: "OrderPlaced", HeaderEventTime: "2026-12-02T00:54:06Z"} {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("header %s: %q, want %q", k, got[k], v)
		}
	}
}

// TestMapBadEnvelope: a body that is not the envelope it should be fails
// its record, naming the field.
func TestMapBadEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format BodyFormat
		body   []byte
		reason string
		field  string
		says   string
	}{
		{"not JSON", BodySNS, []byte("hello"), ReasonInvalidRecord, "body", "not an SNS notification"},
		{"raw delivery", BodySNS, []byte(`{"order":"o-1"}`), ReasonInvalidRecord, "body.Type", "raw message delivery"},
		{"no message", BodySNS, variant(t, snsFile, func(m map[string]any) { delete(m, "Message") }), ReasonInvalidRecord, "body.Message", "missing"},
		{"message not a string", BodySNS, variant(t, snsFile, func(m map[string]any) { m["Message"] = 12 }), ReasonInvalidRecord, "body.Message", "a number, want a string"},
		{"no topic", BodySNS, variant(t, snsFile, func(m map[string]any) { delete(m, "TopicArn") }), ReasonInvalidRecord, "body.TopicArn", "missing"},
		{"binary not base64", BodySNS, variant(t, snsFile, func(m map[string]any) {
			m["MessageAttributes"].(map[string]any)["blob"] = map[string]any{"Type": "Binary", "Value": "*not*"}
		}), ReasonInvalidRecord, "body.MessageAttributes.blob.Value", "not base64"},
		{"unknown attribute type", BodySNS, variant(t, snsFile, func(m map[string]any) {
			m["MessageAttributes"].(map[string]any)["n"] = map[string]any{"Type": "Float", "Value": "1"}
		}), ReasonInvalidRecord, "body.MessageAttributes.n.Type", `"Float", want String`},
		{"message oversized", BodySNS, variant(t, snsFile, func(m map[string]any) { m["Message"] = strings.Repeat("x", 1001) }), ReasonOversized, "body.Message", "over RELAY_MAX_MESSAGE_BYTES"},
		{"event not JSON", BodyEventBridge, []byte(`{"id":`), ReasonInvalidRecord, "body", "not an EventBridge event"},
		{"no detail-type", BodyEventBridge, variant(t, ebFile, func(m map[string]any) { delete(m, "detail-type") }), ReasonInvalidRecord, "body.detail-type", "missing"},
		{"no detail", BodyEventBridge, variant(t, ebFile, func(m map[string]any) { delete(m, "detail") }), ReasonInvalidRecord, "body.detail", "missing"},
		{"source not a string", BodyEventBridge, variant(t, ebFile, func(m map[string]any) { m["source"] = []int{1} }), ReasonInvalidRecord, "body.source", "an array, want a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msg Message
			err := NewMapper(Config{BodyFormat: tc.format, Topic: "events", MaxMessageBytes: 1000}).Map(&Record{MessageID: "m1", Body: tc.body}, &msg)
			var re *RecordError
			if !errors.As(err, &re) || re.Reason != tc.reason || re.Field != tc.field || re.MessageID != "m1" {
				t.Fatalf("err %v, want %s on field %s", err, tc.reason, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "record m1: "+tc.field+": ") || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q, want it to name record m1 and %s and say %q", err, tc.field, tc.says)
			}
		})
	}
}

// TestMapEnvelopeReused: one Message maps an SNS record with attributes,
// then one without; nothing of the first stays.
func TestMapEnvelopeReused(t *testing.T) {
	m := NewMapper(Config{BodyFormat: BodySNS, Topic: "events", MaxMessageBytes: 1000})
	var msg Message
	if err := m.Map(&Record{MessageID: "m1", Body: variant(t, snsFile, nil)}, &msg); err != nil {
		t.Fatal(err)
	}
	bare := variant(t, snsFile, func(m map[string]any) { delete(m, "MessageAttributes"); delete(m, "Subject"); m["Message"] = "second" })
	if err := m.Map(&Record{MessageID: "m2", Body: bare}, &msg); err != nil {
		t.Fatal(err)
	}
	got := headerMap(&msg)
	if string(msg.Value) != "second" || got["customer"] != nil || got[HeaderSNSSubject] != nil {
		t.Errorf("second record: value %q headers %q", msg.Value, got)
	}
}
