package relay

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

func TestMap(t *testing.T) {
	m := NewMapper(Config{Topic: "events", TopicAttribute: "route", AllowedTopics: []string{"audit"}, KeyAttribute: "customer", MaxMessageBytes: 10})
	rec := func(mod func(*Record)) *Record {
		r := &Record{MessageID: "m1", Body: []byte("body"), SentTimestamp: "1700000000123", ReceiveCount: "2", EventSourceARN: "arn:q"}
		if mod != nil {
			mod(r)
		}
		return r
	}
	for _, tc := range []struct {
		name      string
		rec       *Record
		topic     string
		key       string // "<nil>" for none
		wantErr   string
		wantField string
	}{
		{name: "defaults", rec: rec(nil), topic: "events", key: "<nil>"},
		{name: "key attribute", rec: rec(func(r *Record) {
			r.Attributes = []Attribute{{Name: "customer", DataType: "String", Value: []byte("c1")}}
		}), topic: "events", key: "c1"},
		{name: "group as key", rec: rec(func(r *Record) { r.MessageGroupID = "g" }), topic: "events", key: "g"},
		{name: "key attribute over group", rec: rec(func(r *Record) {
			r.MessageGroupID = "g"
			r.Attributes = []Attribute{{Name: "customer", DataType: "Binary", Value: []byte{1}}}
		}), topic: "events", key: "\x01"},
		{name: "routed", rec: rec(func(r *Record) {
			r.Attributes = []Attribute{{Name: "route", DataType: "String", Value: []byte("audit")}}
		}), topic: "audit", key: "<nil>"},
		{name: "route off list", rec: rec(func(r *Record) {
			r.Attributes = []Attribute{{Name: "route", DataType: "String", Value: []byte("events2")}}
		}),
			wantErr: ReasonTopicNotAllowed, wantField: "messageAttributes.route"},
		{name: "at the limit", rec: rec(func(r *Record) { r.Body = []byte("0123456789") }), topic: "events", key: "<nil>"},
		{name: "oversized", rec: rec(func(r *Record) { r.Body = []byte("0123456789x") }), wantErr: ReasonOversized, wantField: "body"},
		{name: "bad timestamp", rec: rec(func(r *Record) { r.SentTimestamp = "yesterday" }), wantErr: ReasonInvalidRecord, wantField: "attributes.SentTimestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msg Message
			err := m.Map(tc.rec, &msg)
			if tc.wantErr != "" {
				var re *RecordError
				if !errors.As(err, &re) || re.Reason != tc.wantErr || re.Field != tc.wantField || re.MessageID != "m1" {
					t.Fatalf("err %v, want %s on field %s", err, tc.wantErr, tc.wantField)
				}
				if !strings.HasPrefix(err.Error(), "record m1: "+tc.wantField+": ") {
					t.Errorf("error %q does not name the record and field", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			key := "<nil>"
			if msg.Key != nil {
				key = string(msg.Key)
			}
			if msg.Topic != tc.topic || key != tc.key {
				t.Errorf("topic %q key %q, want %q %q", msg.Topic, key, tc.topic, tc.key)
			}
			if !msg.Timestamp.Equal(time.UnixMilli(1700000000123)) {
				t.Errorf("timestamp %v", msg.Timestamp)
			}
			h := map[string]string{}
			for _, x := range msg.Headers {
				h[x.Key] = string(x.Value)
			}
			if h[HeaderMessageID] != "m1" || h[HeaderReceiveCount] != "2" || h[HeaderSourceARN] != "arn:q" || h[HeaderSentTimestamp] != "1700000000123" {
				t.Errorf("metadata headers %v", h)
			}
			if _, ok := h[HeaderGroupID]; ok != (tc.rec.MessageGroupID != "") {
				t.Errorf("group header present %v for group %q", ok, tc.rec.MessageGroupID)
			}
		})
	}
}

func TestMapReusesHeaders(t *testing.T) {
	m := NewMapper(Config{Topic: "events", MaxMessageBytes: 100})
	var msg Message
	r := &Record{MessageID: "m1", Body: []byte("b"), Attributes: []Attribute{{Name: "a", Value: []byte("1")}}}
	if err := m.Map(r, &msg); err != nil {
		t.Fatal(err)
	}
	first := &msg.Headers[0]
	if err := m.Map(&Record{MessageID: "m2", Body: []byte("b")}, &msg); err != nil {
		t.Fatal(err)
	}
	if &msg.Headers[0] != first || len(msg.Headers) != 4 {
		t.Errorf("headers reallocated or stale: %d headers", len(msg.Headers))
	}
	if string(msg.Headers[0].Value) != "m2" {
		t.Errorf("first header %q after remapping, want the new message id", msg.Headers[0].Value)
	}
}

// BenchmarkDecodeAndMap is the relay's own work per batch, without
// librdkafka: decoding a 10,000-record event and mapping every record.
func BenchmarkDecodeAndMap(b *testing.B) {
	benchDecodeAndMap(b, BodyRaw, strings.Repeat("x", 1024))
}

// BenchmarkDecodeAndMapEnvelope: the same records, each body a 1 KiB value
// in an SNS notification (two message attributes) or an EventBridge event.
func BenchmarkDecodeAndMapEnvelope(b *testing.B) {
	value := strings.Repeat("x", 1024)
	sns := `{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324","TopicArn":"arn:aws:sns:eu-west-1:123456789012:orders",` +
		`"Subject":"order placed","Message":"` + value + `","Timestamp":"2026-12-02T00:54:06.655Z","SignatureVersion":"1",` +
		`"Signature":"` + strings.Repeat("A", 344) + `","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",` +
		`"UnsubscribeURL":"https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:eu-west-1:123456789012:orders:c9135db0",` +
		`"MessageAttributes":{"customer":{"Type":"String","Value":"c-42"},"priority":{"Type":"Number","Value":"7"}}}`
	eb := `{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"OrderPlaced","source":"com.example.orders",` +
		`"account":"123456789012","time":"2026-12-02T00:54:06Z","region":"eu-west-1","resources":[],"detail":{"order":"o-1","note":"` + value + `"}}`
	b.Run("format=sns", func(b *testing.B) { benchDecodeAndMap(b, BodySNS, sns) })
	b.Run("format=eventbridge", func(b *testing.B) { benchDecodeAndMap(b, BodyEventBridge, eb) })
}

func benchDecodeAndMap(b *testing.B, format BodyFormat, body string) {
	const n = 10000
	var sb strings.Builder
	sb.WriteString(`{"Records":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"messageId":"%08d-0000-4000-8000-000000000000","receiptHandle":"AQEB","body":%q,`+
			`"attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1700000000000","SenderId":"AIDA","ApproximateFirstReceiveTimestamp":"1700000000001"},`+
			`"messageAttributes":{"type":{"stringValue":"order.paid","stringListValues":[],"binaryListValues":[],"dataType":"String"},"tenant":{"stringValue":"t-%d","stringListValues":[],"binaryListValues":[],"dataType":"String"}},`+
			`"md5OfBody":"0","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:123456789012:events","awsRegion":"eu-west-1"}`, i, body, i%16)
	}
	sb.WriteString(`]}`)
	payload := []byte(sb.String())
	m := NewMapper(Config{Topic: "events", MaxMessageBytes: DefaultMaxMessageBytes, BodyFormat: format})
	var msg Message
	var failed error
	// As the handler does: each record is mapped as soon as it is decoded,
	// into a message reused for the next.
	decodeAndMap := func() {
		err := sqsevent.StreamInline(payload, func(r *Record, err error) {
			if err == nil {
				err = m.Map(r, &msg)
			}
			if err != nil && failed == nil {
				failed = err
			}
		})
		if err != nil {
			failed = err
		}
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		decodeAndMap()
	}
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	b.ReportMetric(testing.AllocsPerRun(1, decodeAndMap)/n, "allocs/record")
}

// FuzzMap maps records with arbitrary fields: no panic, an error always
// names the record and a field, and a mapped message carries the record.
func FuzzMap(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "customer", "String", []byte("c-1"), "1700000000000", "", "audit")
	f.Add([]byte(""), "route", "String", []byte("payroll"), "x", "g", "")
	f.Add(bytes.Repeat([]byte("x"), 200), "k", "Binary", []byte{0, 255}, "-1", "group", "audit")
	m := NewMapper(Config{Topic: "events", TopicAttribute: "route", AllowedTopics: []string{"audit"}, KeyAttribute: "customer", MaxMessageBytes: 100})
	f.Fuzz(func(t *testing.T, body []byte, attr, dataType string, value []byte, sent, group, route string) {
		r := &Record{MessageID: "m-1", Body: body, SentTimestamp: sent, MessageGroupID: group, EventSourceARN: "arn:q.fifo",
			Attributes: []Attribute{{Name: attr, DataType: dataType, Value: value}}}
		if route != "" {
			r.Attributes = append(r.Attributes, Attribute{Name: "route", DataType: "String", Value: []byte(route)})
		}
		msg := Message{Headers: make([]Header, 0, HeaderCount(r))}
		err := m.Map(r, &msg)
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) || re.MessageID != "m-1" || re.Field == "" || !strings.HasPrefix(err.Error(), "record m-1: ") {
				t.Fatalf("error %v does not name the record and field", err)
			}
			return
		}
		if len(body) > 100 || string(msg.Value) != string(body) || (msg.Topic != "events" && msg.Topic != "audit") {
			t.Fatalf("mapped %d-byte body to topic %q", len(body), msg.Topic)
		}
		if len(msg.Headers) != HeaderCount(r) {
			t.Fatalf("%d headers, HeaderCount says %d", len(msg.Headers), HeaderCount(r))
		}
	})
}

func TestParseDecimalMatchesStrconv(t *testing.T) {
	for _, s := range []string{
		"", "0", "1", "007", "1700000000000", "999999999999999999", "9223372036854775807",
		"9223372036854775808", "99999999999999999999", "+5", "-5", "1e3", "12a", " 1", "1 ", "٣", "0x10",
	} {
		got, gotErr := parseDecimal(s)
		want, wantErr := strconv.ParseInt(s, 10, 64)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("parseDecimal(%q) = %d, %v; strconv.ParseInt: %d, %v", s, got, gotErr, want, wantErr)
		}
	}
}

func TestReceiveCount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"", 1}, {"0", 1}, {"1", 1}, {"7", 7}, {"2147483647", 2147483647},
		{"2147483648", 1}, {"-3", 1}, {"+3", 3}, {"x", 1},
	} {
		if got := receiveCount(&Record{ReceiveCount: tc.in}); got != tc.want {
			t.Errorf("receiveCount(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
