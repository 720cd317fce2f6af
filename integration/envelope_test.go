package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// TestStackSNSEnvelopes: notifications fauxqs's SNS fans out to a queue,
// as SNS writes them (no raw message delivery), land with the Message as
// the value and the notification's attributes and metadata as headers;
// a body sent to the queue directly, not a notification, fails alone and
// goes to the DLQ on its first receive.
func TestStackSNSEnvelopes(t *testing.T) {
	var q Queue
	s, logs := startStackWith(t, StackConfig{FunctionTimeout: 5 * time.Second,
		FunctionEnv: []string{"RELAY_BODY_FORMAT=sns", "RELAY_KEY_ATTRIBUTE=customer", "RELAY_RETRY_BASE=1s"},
		Prepare: func(s *Stack) ([]string, error) {
			var err error
			q, err = s.CreateQueue(context.Background(), "fanout", false, 30*time.Second, 5)
			return []string{"RELAY_DLQ_URL=" + q.DLQURL}, err
		}})
	ctx := context.Background()
	c := s.SQS.SNSClient()
	topic, err := c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(q.ARN)}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var sent []string
	message := func(i int) string { return fmt.Sprintf(`{"order":%d,"note":"caf\u00e9 \"%d\""}`, i, i) }
	for i := range n {
		trace := fmt.Sprintf("sns-%06d", i)
		attrs := map[string]snstypes.MessageAttributeValue{TraceAttribute: {DataType: aws.String("String"), StringValue: aws.String(trace)}}
		if i%2 == 0 {
			attrs["customer"] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(fmt.Sprint("c-", i%5))}
			attrs["blob"] = snstypes.MessageAttributeValue{DataType: aws.String("Binary"), BinaryValue: []byte{0, 0xff, byte(i)}}
		}
		in := &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String(message(i)), MessageAttributes: attrs}
		if i%3 == 0 {
			in.Subject = aws.String("order placed")
		}
		if _, err := c.Publish(ctx, in); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, trace)
	}
	bad, err := s.Send(ctx, q, "raw", 1, func(int) Message { return Message{Body: `{"order":"not a notification"}`} })
	if err != nil {
		t.Fatal(err)
	}
	r, _ := relayThrough(t, s, q, 10, time.Minute, []string{"events"}, append(sent, bad...))
	if len(r.Lost) != 0 || r.InKafka != n || r.InDLQ != 1 || !r.DLQ[bad[0]] {
		t.Fatalf("%v, want %d in Kafka and the raw body in the DLQ", r, n)
	}
	for i, trace := range sent {
		rec := r.Kafka[trace][0]
		if string(rec.Value) != message(i) {
			t.Errorf("%s: value %q, want the notification's Message %q", trace, rec.Value, message(i))
		}
		if got := headerOf(rec.Headers, "sqs:sns-topic-arn"); got != *topic.TopicArn {
			t.Errorf("%s: sqs:sns-topic-arn %q, want %s", trace, got, *topic.TopicArn)
		}
		if headerOf(rec.Headers, "sqs:sns-message-id") == "" || !strings.HasPrefix(headerOf(rec.Headers, "sqs:sns-timestamp"), "20") {
			t.Errorf("%s: no SNS message id or timestamp in %v", trace, rec.Headers)
		}
		if got, want := headerOf(rec.Headers, "sqs:sns-subject"), map[bool]string{true: "order placed"}[i%3 == 0]; got != want {
			t.Errorf("%s: subject %q, want %q", trace, got, want)
		}
		if i%2 == 0 {
			if string(rec.Key) != fmt.Sprint("c-", i%5) || headerOf(rec.Headers, "blob") != string([]byte{0, 0xff, byte(i)}) {
				t.Errorf("%s: key %q blob %q, want the notification's customer and its bytes", trace, rec.Key, headerOf(rec.Headers, "blob"))
			}
		} else if rec.Key != nil {
			t.Errorf("%s: key %q, want none", trace, rec.Key)
		}
	}
	if !logsSay(logs, "body.Type") {
		t.Errorf("no log line names body.Type for the raw body")
	}
}

// TestStackEventBridgeEvents: events as an EventBridge rule writes them to
// a queue land whole, headed by their id, source, detail-type and time
// and routed by detail-type; an event without detail-type fails alone.
func TestStackEventBridgeEvents(t *testing.T) {
	var q Queue
	s, _ := startStackWith(t, StackConfig{FunctionTimeout: 5 * time.Second,
		FunctionEnv: []string{"RELAY_BODY_FORMAT=eventbridge", "RELAY_TOPIC_ATTRIBUTE=detail-type", "RELAY_ALLOWED_TOPICS=audit,events", "RELAY_RETRY_BASE=1s"},
		Prepare: func(s *Stack) ([]string, error) {
			var err error
			q, err = s.CreateQueue(context.Background(), "rules", false, 30*time.Second, 5)
			return []string{"RELAY_DLQ_URL=" + q.DLQURL}, err
		}})
	ctx := context.Background()
	event := func(i int) string {
		detailType := map[bool]string{true: "audit", false: "events"}[i%4 == 0]
		if i == 7 {
			return `{"version":"0","id":"e-7","source":"com.example.orders","detail":{}}`
		}
		return fmt.Sprintf(`{"version":"0","id":"e-%d","detail-type":%q,"source":"com.example.orders","account":"123456789012",`+
			`"time":"2026-12-02T00:54:06Z","region":"eu-west-1","resources":[],"detail":{"order":%d}}`, i, detailType, i)
	}
	sent, err := s.Send(ctx, q, "eb", 30, func(i int) Message { return Message{Body: event(i)} })
	if err != nil {
		t.Fatal(err)
	}
	r, _ := relayThrough(t, s, q, 10, time.Minute, []string{"events", "audit"}, sent)
	if len(r.Lost) != 0 || r.InKafka != 29 || !r.DLQ[sent[7]] {
		t.Fatalf("%v, want 29 in Kafka and the event without detail-type in the DLQ", r)
	}
	for i, trace := range sent {
		if i == 7 {
			continue
		}
		rec := r.Kafka[trace][0]
		wantTopic := map[bool]string{true: "audit", false: "events"}[i%4 == 0]
		if string(rec.Value) != event(i) || rec.Topic != wantTopic {
			t.Errorf("%s: topic %s value %q, want %s and the whole event", trace, rec.Topic, rec.Value, wantTopic)
		}
		if headerOf(rec.Headers, "sqs:event-id") != fmt.Sprint("e-", i) || headerOf(rec.Headers, "sqs:event-source") != "com.example.orders" ||
			headerOf(rec.Headers, "sqs:event-time") != "2026-12-02T00:54:06Z" {
			t.Errorf("%s: headers %v", trace, rec.Headers)
		}
	}
}

// TestBinaryTraceThroughFormats: the real binary, under the Runtime API,
// given events as Lambda writes them with an AWSTraceHeader, heads each
// record with X-Amzn-Trace-Id and the derived traceparent whatever the
// body format; a traceparent the publisher set in the SNS notification
// wins. (fauxqs does not carry AWSTraceHeader, so the stack cannot.)
func TestBinaryTraceThroughFormats(t *testing.T) {
	const xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	const derived = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
	const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sns := func(attrs string) string {
		return `{"Type":"Notification","MessageId":"n-1","TopicArn":"arn:aws:sns:eu-west-1:123456789012:orders","Message":"{\"order\":1}",` +
			`"Timestamp":"2026-12-02T00:54:06.655Z","SignatureVersion":"1","Signature":"EXAMPLE"` + attrs + `}`
	}
	for _, tc := range []struct {
		format, body, value, traceparent string
	}{
		{"raw", `{"order":1}`, `{"order":1}`, derived},
		{"sns", sns(""), `{"order":1}`, derived},
		{"sns", sns(`,"MessageAttributes":{"traceparent":{"Type":"String","Value":"` + own + `"}}`), `{"order":1}`, own},
		{"eventbridge", `{"version":"0","id":"e-1","detail-type":"OrderPlaced","source":"orders","time":"2026-12-02T00:54:06Z","detail":{}}`, "", derived},
	} {
		t.Run(tc.format, func(t *testing.T) {
			c, err := broker.Start(1, []string{"events"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			api, _, _ := startFunction(t, "RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_RETRY_BASE=0", "RELAY_BODY_FORMAT="+tc.format)
			ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", Body: tc.body, EventSource: "aws:sqs",
				EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events", AWSRegion: "eu-west-1",
				Attributes: map[string]string{"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1", "AWSTraceHeader": xray}}}}
			payload, _ := json.Marshal(ev)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := api.Invoke(ctx, payload, 10*time.Second)
			if err != nil || res.Error || failures(t, res.Payload) != 0 {
				t.Fatalf("%v %+v", err, res)
			}
			recs, err := c.Records("events", 10*time.Second)
			if err != nil || len(recs) != 1 {
				t.Fatalf("%d records in Kafka: %v", len(recs), err)
			}
			r := recs[0]
			want := tc.value
			if want == "" {
				want = tc.body
			}
			if string(r.Value) != want || headerOf(r.Headers, "X-Amzn-Trace-Id") != xray || headerOf(r.Headers, "traceparent") != tc.traceparent {
				t.Errorf("value %q headers %v, want %q with X-Amzn-Trace-Id and traceparent %s", r.Value, r.Headers, want, tc.traceparent)
			}
			n := 0
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d traceparent headers, want one", n)
			}
		})
	}
}
