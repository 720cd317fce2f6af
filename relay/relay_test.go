package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/sqsevent"
	"github.com/sqs-msk-relay/relay/relay/sqsevent/sqseventtest"
)

const (
	queueARN = "arn:aws:sqs:eu-west-1:123456789012:events"
	fifoARN  = "arn:aws:sqs:eu-west-1:123456789012:events.fifo"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	h    *relay.Handler
	p    *kafka.Producer
	logs *syncBuffer
	// arriving has invoke hand the event over while it arrives, 4 KiB at
	// a time, as the function's runtime loop hands over a large one; flow
	// is the last one handed over.
	arriving bool
	flow     *sqseventtest.Flow
}

// newRelay builds the handler and a real librdkafka producer from env, as
// the function does, with logs captured.
func newRelay(t *testing.T, env map[string]string) *fixture {
	t.Helper()
	full := map[string]string{"RELAY_AUTH": "none", "RELAY_TOPIC": "events", "RELAY_LOG_LEVEL": "debug"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := kafka.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("relay logs:\n%s", logs.String())
		}
	})
	return &fixture{h: relay.NewHandler(cfg, p, log), p: p, logs: logs}
}

func startBroker(t *testing.T, partitions int32, topics []string, opts ...kfake.Opt) *broker.Cluster {
	t.Helper()
	c, err := broker.Start(partitions, topics, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// invoke runs one invocation with a deadline timeout away and checks the
// response's shape: valid JSON, every identifier a messageId of the batch.
func (f *fixture) invoke(t *testing.T, ev events.SQSEvent, timeout time.Duration) (failed map[string]bool, took time.Duration) {
	t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "req-" + t.Name()})
	deadline, _ := ctx.Deadline()
	start := time.Now()
	var out []byte
	if f.arriving {
		f.flow = sqseventtest.NewFlow(payload, 4096)
		out, err = f.h.InvokeArriving(ctx, f.flow)
	} else {
		out, err = f.h.Invoke(ctx, payload)
	}
	took = time.Since(start)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if time.Now().After(deadline) {
		t.Errorf("answered %v after the deadline", time.Since(deadline))
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	if resp.BatchItemFailures == nil {
		t.Errorf("response %s: batchItemFailures must be a list, not null", out)
	}
	ids := map[string]bool{}
	for _, r := range ev.Records {
		ids[r.MessageId] = true
	}
	failed = map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == "" || !ids[f.ItemIdentifier] {
			t.Errorf("item identifier %q is not a messageId of the batch", f.ItemIdentifier)
		}
		if failed[f.ItemIdentifier] {
			t.Errorf("item identifier %q listed twice", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, took
}

func str(s string) *string { return &s }

// msg is an SQS record as Lambda delivers it.
func msg(id, body string) events.SQSMessage {
	return events.SQSMessage{
		MessageId:      id,
		Body:           body,
		EventSourceARN: queueARN,
		Attributes: map[string]string{
			"SentTimestamp":           "1700000000123",
			"ApproximateReceiveCount": "1",
		},
	}
}

func fifoMsg(id, group, body string) events.SQSMessage {
	m := msg(id, body)
	m.EventSourceARN = fifoARN
	m.Attributes["MessageGroupId"] = group
	m.Attributes["SequenceNumber"] = "1000" + id
	return m
}

func batch(n int, body func(i int) string) events.SQSEvent {
	var ev events.SQSEvent
	for i := range n {
		ev.Records = append(ev.Records, msg(fmt.Sprintf("m-%05d", i), body(i)))
	}
	return ev
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func byMessageID(t *testing.T, recs []*kgo.Record) map[string]*kgo.Record {
	t.Helper()
	m := map[string]*kgo.Record{}
	for _, r := range recs {
		id, ok := header(r, relay.HeaderMessageID)
		if !ok {
			t.Fatalf("record at %s/%d@%d has no %s header", r.Topic, r.Partition, r.Offset, relay.HeaderMessageID)
		}
		m[id] = r
	}
	return m
}

func TestRecordsLandMapped(t *testing.T) {
	c := startBroker(t, 3, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_KEY_ATTRIBUTE": "customer"})

	ev := batch(50, func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) })
	ev.Records[0].Attributes["AWSTraceHeader"] = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	ev.Records[0].MessageAttributes = map[string]events.SQSMessageAttribute{
		"customer": {DataType: "String", StringValue: str("c-42")},
		"amount":   {DataType: "Number.cents", StringValue: str("1999")},
		"blob":     {DataType: "Binary", BinaryValue: []byte{0, 1, 2, 255}},
	}
	failed, _ := f.invoke(t, ev, 10*time.Second)
	if len(failed) != 0 {
		t.Fatalf("failed %v, want none", failed)
	}
	recs, err := c.Records("events", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 50 {
		t.Fatalf("%d records in Kafka, want 50", len(recs))
	}
	got := byMessageID(t, recs)
	first := got["m-00000"]
	if string(first.Value) != `{"n":0}` || string(first.Key) != "c-42" {
		t.Errorf("value %q key %q, want {\"n\":0} and c-42", first.Value, first.Key)
	}
	if !first.Timestamp.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("timestamp %v, want SentTimestamp", first.Timestamp)
	}
	wantHeaders := map[string]string{
		"customer":                "c-42",
		"amount":                  "1999",
		"blob":                    "\x00\x01\x02\xff",
		relay.HeaderSentTimestamp: "1700000000123",
		relay.HeaderReceiveCount:  "1",
		relay.HeaderSourceARN:     queueARN,
		relay.HeaderMessageID:     "m-00000",
		relay.HeaderXRay:          "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		relay.HeaderTraceparent:   "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",
	}
	for k, want := range wantHeaders {
		if v, ok := header(first, k); !ok || v != want {
			t.Errorf("header %s = %q (present %v), want %q", k, v, ok, want)
		}
	}
	if second := got["m-00001"]; second.Key != nil {
		t.Errorf("record without key attribute or group has key %q", second.Key)
	}
	if _, ok := header(got["m-00001"], relay.HeaderTraceparent); ok {
		t.Errorf("a record without AWSTraceHeader has a traceparent")
	}
	// Batch order holds within each partition.
	last := map[int32]int{}
	for _, r := range recs {
		id, _ := header(r, relay.HeaderMessageID)
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "m-"))
		if prev, ok := last[r.Partition]; ok && n < prev {
			t.Errorf("partition %d: %s after m-%05d", r.Partition, id, prev)
		}
		last[r.Partition] = n
	}
	if !strings.Contains(f.logs.String(), `"msg":"batch relayed"`) || !strings.Contains(f.logs.String(), `"requestId":"req-TestRecordsLandMapped"`) {
		t.Errorf("no summary line with the request id in logs")
	}
}

func TestSampleEvent(t *testing.T) {
	c := startBroker(t, 1, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs()})
	payload, err := os.ReadFile("testdata/aws-lambda-go-sqs-event.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	if failed, _ := f.invoke(t, ev, 10*time.Second); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	recs, err := c.Records("events", 10*time.Second)
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d records, %v; want 1", len(recs), err)
	}
	r := recs[0]
	for k, want := range map[string]string{"Attribute1": "AttributeValue1", "Attribute2": "123", "Attribute3": "1100", relay.HeaderMessageID: "MessageID_1", relay.HeaderReceiveCount: "2"} {
		if v, _ := header(r, k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if string(r.Value) != "Message Body" {
		t.Errorf("value %q", r.Value)
	}
}

func TestPartialFailures(t *testing.T) {
	c := startBroker(t, 3, []string{"events", "audit"})
	f := newRelay(t, map[string]string{
		"RELAY_BROKERS":           c.Addrs(),
		"RELAY_MAX_MESSAGE_BYTES": "100",
		"RELAY_TOPIC_ATTRIBUTE":   "route",
		"RELAY_ALLOWED_TOPICS":    "audit",
	})
	ev := batch(20, func(i int) string { return "ok" })
	ev.Records[3].Body = strings.Repeat("x", 101)
	ev.Records[7].MessageAttributes = map[string]events.SQSMessageAttribute{"route": {DataType: "String", StringValue: str("secret-topic")}}
	ev.Records[9].MessageAttributes = map[string]events.SQSMessageAttribute{"route": {DataType: "String", StringValue: str("audit")}}
	ev.Records[11].MessageAttributes = map[string]events.SQSMessageAttribute{"bad": {DataType: "Binary"}}

	failed, _ := f.invoke(t, ev, 10*time.Second)
	want := map[string]bool{"m-00003": true, "m-00007": true, "m-00011": true}
	if fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	if n := c.Count("events"); n != 16 {
		t.Errorf("%d records in events, want 16", n)
	}
	if n := c.Count("audit"); n != 1 {
		t.Errorf("%d records in audit, want 1", n)
	}
	logs := f.logs.String()
	for _, want := range []string{
		`record m-00003: body: 101 bytes, over RELAY_MAX_MESSAGE_BYTES=100`,
		`record m-00007: messageAttributes.route: names topic \"secret-topic\", which is not on RELAY_ALLOWED_TOPICS`,
		`record m-00011: messageAttributes.bad.binaryValue: missing`,
		`"failedByReason":{"invalid_record":1,"oversized":1,"topic_not_allowed":1}`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

// TestBatchesAfterEachOther: batches on one handler take the last one's
// per-record slices (and the producer's); each answer names only its own
// failures, whether the batch is larger or smaller than the last, read
// whole or while it arrives.
func TestBatchesAfterEachOther(t *testing.T) {
	for _, arriving := range []bool{false, true} {
		t.Run(fmt.Sprintf("arriving=%v", arriving), func(t *testing.T) {
			c := startBroker(t, 3, []string{"events"})
			f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_MAX_MESSAGE_BYTES": "100"})
			f.arriving = arriving
			var produced int64
			for _, tc := range []struct {
				n         int
				oversized []int
			}{{20, []int{3, 11}}, {5, nil}, {30, []int{25}}, {1, []int{0}}, {12, nil}} {
				ev := batch(tc.n, func(i int) string { return "ok" })
				want := map[string]bool{}
				for _, i := range tc.oversized {
					ev.Records[i].Body = strings.Repeat("x", 101)
					want[ev.Records[i].MessageId] = true
				}
				failed, _ := f.invoke(t, ev, 10*time.Second)
				if fmt.Sprint(failed) != fmt.Sprint(want) {
					t.Fatalf("%d records: failed %v, want %v", tc.n, failed, want)
				}
				produced += int64(tc.n - len(tc.oversized))
				if n := c.Count("events"); n != produced {
					t.Fatalf("after the %d-record batch: %d records in events, want %d", tc.n, n, produced)
				}
				var summary struct{ Records, Succeeded, Failed int }
				lines := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
				for _, line := range slices.Backward(lines) {
					if strings.Contains(line, `"msg":"batch relayed"`) {
						if err := json.Unmarshal([]byte(line), &summary); err != nil {
							t.Fatal(err)
						}
						break
					}
				}
				if summary.Records != tc.n || summary.Failed != len(tc.oversized) || summary.Succeeded != tc.n-len(tc.oversized) {
					t.Fatalf("%d records, %d oversized: summary %+v", tc.n, len(tc.oversized), summary)
				}
			}
		})
	}
}

func TestBrokerUnreachableFailsBatchBeforeDeadline(t *testing.T) {
	addr, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	f := newRelay(t, map[string]string{"RELAY_BROKERS": addr, "RELAY_BROKERS_DOWN_GRACE": "500ms"})
	ev := batch(100, func(i int) string { return "x" })
	failed, took := f.invoke(t, ev, 20*time.Second)
	if len(failed) != 100 {
		t.Fatalf("%d failed, want all 100", len(failed))
	}
	// Recognised as a batch-level cause, not discovered at the deadline.
	if took > 10*time.Second {
		t.Errorf("took %v: the batch waited for the deadline instead of failing on the unreachable broker", took)
	}
	if !strings.Contains(f.logs.String(), `"msg":"batch failed: no broker reachable`) {
		t.Errorf("no batch-level log line naming the cause")
	}
}

func TestSilentBrokerAnswersBeforeDeadline(t *testing.T) {
	s, err := broker.StartSilent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := newRelay(t, map[string]string{"RELAY_BROKERS": s.Addr(), "RELAY_DEADLINE_MARGIN": "500ms"})
	ev := batch(100, func(i int) string { return "x" })
	failed, _ := f.invoke(t, ev, 3*time.Second)
	if len(failed) != 100 {
		t.Fatalf("%d failed, want all 100", len(failed))
	}
	if !strings.Contains(f.logs.String(), `"reason":"deadline"`) {
		t.Errorf("records not failed for the deadline")
	}
}

func TestIdempotentRetriesWriteOnce(t *testing.T) {
	c := startBroker(t, 3, []string{"events"})
	// Answer produce with REQUEST_TIMED_OUT after appending: the producer
	// retries what the broker already has, and idempotence drops the copies.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 3})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs()})
	ev := batch(300, func(i int) string { return strconv.Itoa(i) })
	failed, _ := f.invoke(t, ev, 20*time.Second)
	if len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if hits := h.Hits(); hits != 3 {
		t.Fatalf("fault hit %d times, want 3", hits)
	}
	if n := c.Count("events"); n != 300 {
		t.Fatalf("%d records in Kafka, want exactly 300", n)
	}
}

func TestFIFOGroupBlockedBeforeProducing(t *testing.T) {
	c := startBroker(t, 3, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_MAX_MESSAGE_BYTES": "10"})
	ev := events.SQSEvent{Records: []events.SQSMessage{
		fifoMsg("a1", "A", "ok"),
		fifoMsg("b1", "B", "ok"),
		fifoMsg("a2", "A", "much too long"),
		fifoMsg("a3", "A", "ok"),
		fifoMsg("b2", "B", "ok"),
	}}
	failed, _ := f.invoke(t, ev, 10*time.Second)
	if want := map[string]bool{"a2": true, "a3": true}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	recs, err := c.Records("events", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := byMessageID(t, recs)
	if len(got) != 3 || got["a1"] == nil || got["b1"] == nil || got["b2"] == nil {
		t.Fatalf("in Kafka: %v, want a1 b1 b2 (a3 must not be produced)", keys(got))
	}
	if string(got["a1"].Key) != "A" {
		t.Errorf("FIFO record key %q, want its MessageGroupId", got["a1"].Key)
	}
	if v, _ := header(got["b2"], relay.HeaderGroupID); v != "B" {
		t.Errorf("group header %q", v)
	}
	if !strings.Contains(f.logs.String(), `"messageId":"a3","reason":"group_blocked"`) {
		t.Errorf("a3 not reported as blocked by its group")
	}
}

func TestFIFOGroupBlockedAfterDeliveryFailure(t *testing.T) {
	c := startBroker(t, 3, []string{"events"})
	f := newRelay(t, map[string]string{
		"RELAY_BROKERS":         c.Addrs(),
		"RELAY_TOPIC_ATTRIBUTE": "route",
		"RELAY_ALLOWED_TOPICS":  "ghost", // allowed, but does not exist
	})
	ghost := fifoMsg("a2", "A", "to a missing topic")
	ghost.MessageAttributes = map[string]events.SQSMessageAttribute{"route": {DataType: "String", StringValue: str("ghost")}}
	ev := events.SQSEvent{Records: []events.SQSMessage{
		fifoMsg("a1", "A", "ok"), ghost, fifoMsg("a3", "A", "ok"), fifoMsg("b1", "B", "ok"),
	}}
	failed, _ := f.invoke(t, ev, 15*time.Second)
	if want := map[string]bool{"a2": true, "a3": true}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	if !strings.Contains(f.logs.String(), `"messageId":"a3","reason":"group_blocked"`) {
		t.Errorf("a3 not reported as blocked by its group")
	}
}

func TestStandardQueueDoesNotBlockByGroup(t *testing.T) {
	c := startBroker(t, 1, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_MAX_MESSAGE_BYTES": "10"})
	ev := batch(3, func(i int) string { return "ok" })
	ev.Records[0].Body = "much too long"
	// Fair queues are standard queues whose messages carry a group: it
	// spreads load, it does not order them.
	for i := range ev.Records {
		ev.Records[i].Attributes["MessageGroupId"] = "A"
	}
	failed, _ := f.invoke(t, ev, 10*time.Second)
	if len(failed) != 1 || !failed["m-00000"] {
		t.Fatalf("failed %v, want only m-00000", failed)
	}
}

func TestUnknownTopicFailsBatchWithOneCause(t *testing.T) {
	c := startBroker(t, 1, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_TOPIC": "missing"})
	failed, took := f.invoke(t, batch(20, func(int) string { return "x" }), 30*time.Second)
	if len(failed) != 20 {
		t.Fatalf("%d failed, want 20", len(failed))
	}
	if took > 15*time.Second {
		t.Errorf("took %v: an unknown topic should fail within the metadata propagation wait", took)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, `"msg":"batch failed: every record failed`); n != 1 {
		t.Errorf("%d batch-level lines, want 1; logs:\n%s", n, logs)
	}
	if !strings.Contains(logs, "unknown_topic") {
		t.Errorf("cause does not name the unknown topic")
	}
}

func TestConcurrentBatchesTrackTheirOwnReports(t *testing.T) {
	c := startBroker(t, 3, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_MAX_MESSAGE_BYTES": "10"})
	var wg sync.WaitGroup
	results := make([]map[string]bool, 4)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev events.SQSEvent
			for i := range 200 {
				body := "ok"
				if i%50 == g { // a different record fails in each batch
					body = "much too long"
				}
				ev.Records = append(ev.Records, msg(fmt.Sprintf("g%d-%03d", g, i), body))
			}
			results[g], _ = f.invoke(t, ev, 20*time.Second)
		}()
	}
	wg.Wait()
	for g, failed := range results {
		want := map[string]bool{}
		for i := g; i < 200; i += 50 {
			want[fmt.Sprintf("g%d-%03d", g, i)] = true
		}
		if fmt.Sprint(failed) != fmt.Sprint(want) {
			t.Errorf("batch %d failed %v, want %v", g, failed, want)
		}
	}
	if n := c.Count("events"); n != 4*196 {
		t.Errorf("%d records in Kafka, want %d", n, 4*196)
	}
}

func TestMalformedEvent(t *testing.T) {
	c := startBroker(t, 1, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs()})
	ctx := context.Background()
	for _, payload := range []string{`not json`, `{"relay":"doctor"}`, `{"Records":[{"body":"no id"}]}`} {
		if _, err := f.h.Invoke(ctx, []byte(payload)); err == nil {
			t.Errorf("Invoke(%s) succeeded; a batch that cannot be reported record by record must fail whole", payload)
		}
	}
	// A record with an id but a malformed field fails alone.
	out, err := f.h.Invoke(ctx, []byte(`{"Records":[
		{"messageId":"good","body":"x","eventSourceARN":"`+queueARN+`"},
		{"messageId":"bad","body":17,"eventSourceARN":"`+queueARN+`"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"batchItemFailures":[{"itemIdentifier":"bad"}]}` {
		t.Errorf("response %s", out)
	}
	if c.Count("events") != 1 {
		t.Errorf("%d records in Kafka, want 1", c.Count("events"))
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestKeysLandWhereJavaClientsPutThem(t *testing.T) {
	c := startBroker(t, 7, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_KEY_ATTRIBUTE": "k"})
	ev := batch(100, func(int) string { return "x" })
	for i := range ev.Records {
		ev.Records[i].MessageAttributes = map[string]events.SQSMessageAttribute{"k": {DataType: "String", StringValue: str(fmt.Sprintf("key-%d", i))}}
	}
	if failed, _ := f.invoke(t, ev, 10*time.Second); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	recs, err := c.Records("events", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// franz-go's default key partitioner is Java's murmur2.
	java := kgo.StickyKeyPartitioner(nil).ForTopic("events")
	for _, r := range recs {
		if want := int32(java.Partition(&kgo.Record{Key: r.Key}, 7)); r.Partition != want {
			t.Errorf("key %s in partition %d, Java's murmur2 puts it in %d", r.Key, r.Partition, want)
		}
	}
}

// TestBootstrapNameDoesNotResolve relays to a broker whose name does not
// resolve. It runs itself again in a network namespace of its own
// (unshare -n: only a loopback that is down), so librdkafka's lookup fails
// at once and no DNS query leaves the machine.
func TestBootstrapNameDoesNotResolve(t *testing.T) {
	if os.Getenv("RELAY_IN_NETNS") == "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-n", os.Args[0], "-test.run", "^TestBootstrapNameDoesNotResolve$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "RELAY_IN_NETNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestBootstrapNameDoesNotResolve") {
			t.Fatalf("in a network namespace (unshare -n, root needed): %v\n%s", err, out)
		}
		return
	}
	f := newRelay(t, map[string]string{"RELAY_BROKERS": "b-1.relay.example.invalid:9098", "RELAY_BROKERS_DOWN_GRACE": "1s"})
	failed, took := f.invoke(t, batch(10, func(int) string { return "x" }), 20*time.Second)
	if len(failed) != 10 || took > 10*time.Second {
		t.Fatalf("%d of 10 failed in %v; want all, within seconds", len(failed), took)
	}
	logs := f.logs.String()
	for _, want := range []string{`"reason":"brokers_down"`, "Failed to resolve", "hint: the broker's name does not resolve"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs do not say %q", want)
		}
	}
}

// TestLargeFIFOEventPipelined runs an event big enough to be decoded on its
// own goroutine: failures and the FIFO groups they block come out as for a
// small one, and every group keeps its order in Kafka.
func TestLargeFIFOEventPipelined(t *testing.T) {
	for _, arriving := range []bool{false, true} {
		t.Run(fmt.Sprintf("arriving=%v", arriving), func(t *testing.T) { largeFIFOEvent(t, arriving) })
	}
}

// largeFIFOEvent is TestLargeFIFOEventPipelined, the event given whole or
// while it arrives.
func largeFIFOEvent(t *testing.T, arriving bool) {
	c := startBroker(t, 3, []string{"events"})
	f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_MAX_MESSAGE_BYTES": "1500"})
	f.arriving = arriving
	var ev events.SQSEvent
	groups := []string{"A", "B", "C", "D"}
	const n = 600
	for i := range n {
		ev.Records = append(ev.Records, fifoMsg(fmt.Sprintf("m-%03d", i), groups[i%4], strings.Repeat("x", 1000)))
	}
	ev.Records[101].Body = strings.Repeat("x", 2000)                                                       // group B fails from here on
	ev.Records[202].MessageAttributes = map[string]events.SQSMessageAttribute{"bad": {DataType: "Binary"}} // group C
	if payload, _ := json.Marshal(ev); len(payload) < sqsevent.PipelineMinBytes {
		t.Fatalf("event is %d bytes: too small to be pipelined", len(payload))
	}

	failed, _ := f.invoke(t, ev, 20*time.Second)
	// Past the handler's and the decoder's first looks (is it large?),
	// records are read as the event comes: every further early answer is
	// the decoder asking for more.
	if arriving && f.flow.Early() <= 2 {
		t.Errorf("%d waits answered before the event had all come: it was read whole, not while it arrived", f.flow.Early())
	}
	want := map[string]bool{}
	for i := 101; i < n; i += 4 {
		want[fmt.Sprintf("m-%03d", i)] = true
	}
	for i := 202; i < n; i += 4 {
		want[fmt.Sprintf("m-%03d", i)] = true
	}
	if fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("failed %d records %v, want %d %v", len(failed), keys(failed), len(want), keys(want))
	}
	recs, err := c.Records("events", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n-len(want) {
		t.Fatalf("%d records in Kafka, want %d", len(recs), n-len(want))
	}
	last := map[string]string{}
	for _, r := range recs {
		id, _ := header(r, relay.HeaderMessageID)
		if want[id] {
			t.Errorf("%s is in Kafka and reported failed", id)
		}
		if prev := last[string(r.Key)]; id <= prev {
			t.Errorf("group %s: %s after %s", r.Key, id, prev)
		}
		last[string(r.Key)] = id
	}
}

// firstFailureFirst is a producer whose batches, asked for failures after
// the first message was added, wait until librdkafka has reported one: the
// report is then known before the next record of the group is handed over,
// as it may be in any batch, but here every time.
type firstFailureFirst struct{ relay.Producer }

func (p firstFailureFirst) Start(ctx context.Context, n int) relay.Batch {
	return &waitFirstFailure{Batch: p.Producer.Start(ctx, n), ctx: ctx}
}

type waitFirstFailure struct {
	relay.Batch
	ctx    context.Context
	adds   int
	waited bool
}

func (b *waitFirstFailure) Add(m *relay.Message) error {
	err := b.Batch.Add(m)
	if err == nil {
		b.adds++
	}
	return err
}

func (b *waitFirstFailure) Failures() []int {
	if b.adds != 1 || b.waited {
		return b.Batch.Failures()
	}
	b.waited = true
	for b.ctx.Err() == nil {
		if f := b.Batch.Failures(); len(f) > 0 {
			return f
		}
		runtime.Gosched()
	}
	return nil
}

// TestFIFOGroupBlockedOnceFailureKnown: a delivery failure already reported
// when a later record of its group comes keeps that record from being
// produced (it would land out of order, and again on the retry).
func TestFIFOGroupBlockedOnceFailureKnown(t *testing.T) {
	c := startBroker(t, 3, []string{"events"})
	f := newRelay(t, map[string]string{
		"RELAY_BROKERS":         c.Addrs(),
		"RELAY_TOPIC_ATTRIBUTE": "route",
		"RELAY_ALLOWED_TOPICS":  "ghost", // allowed, but does not exist
	})
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"RELAY_AUTH": "none", "RELAY_TOPIC": "events", "RELAY_BROKERS": c.Addrs(),
			"RELAY_TOPIC_ATTRIBUTE": "route", "RELAY_ALLOWED_TOPICS": "ghost"}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	f.h = relay.NewHandler(cfg, firstFailureFirst{f.p}, slog.New(slog.NewJSONHandler(f.logs, nil)))
	ghost := fifoMsg("a1", "A", "to a missing topic")
	ghost.MessageAttributes = map[string]events.SQSMessageAttribute{"route": {DataType: "String", StringValue: str("ghost")}}
	ev := events.SQSEvent{Records: []events.SQSMessage{ghost, fifoMsg("a2", "A", "ok"), fifoMsg("b1", "B", "ok")}}
	failed, _ := f.invoke(t, ev, 15*time.Second)
	if want := map[string]bool{"a1": true, "a2": true}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	recs, err := c.Records("events", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := byMessageID(t, recs)
	if _, ok := got["a2"]; ok {
		t.Errorf("a2 was produced after a1's failure was known")
	}
	if _, ok := got["b1"]; !ok {
		t.Errorf("b1 of another group is not in Kafka")
	}
}

// TestShortTimeoutNamesBatchCause: with a function timeout shorter than the
// brokers-down grace plus the margin, the deadline comes first; the batch
// still fails with the cause named, not as "deadline".
func TestShortTimeoutNamesBatchCause(t *testing.T) {
	addr, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	f := newRelay(t, map[string]string{"RELAY_BROKERS": addr}) // grace 3 s, margin 1 s
	for _, timeout := range []time.Duration{2 * time.Second, time.Second} {
		failed, _ := f.invoke(t, batch(10, func(int) string { return "x" }), timeout)
		if len(failed) != 10 {
			t.Fatalf("timeout %v: %d failed, want all 10", timeout, len(failed))
		}
	}
	logs := f.logs.String()
	if n := strings.Count(logs, `"msg":"batch failed: no broker reachable`); n != 2 {
		t.Errorf("%d batch-level lines naming the cause, want 2; logs:\n%s", n, logs)
	}
	if strings.Contains(logs, `"reason":"deadline"`) {
		t.Errorf("records failed as deadline, hiding the cause")
	}
}

// TestManyFailuresLoggedGrouped: a batch with more failures than a line
// each is worth logs them grouped by reason and error, 500 ids to a line,
// every id once.
func TestManyFailuresLoggedGrouped(t *testing.T) {
	addr, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	f := newRelay(t, map[string]string{"RELAY_BROKERS": addr, "RELAY_BROKERS_DOWN_GRACE": "300ms", "RELAY_MAX_MESSAGE_BYTES": "10"})
	ev := batch(1200, func(i int) string { return "x" })
	ev.Records[3].Body = "much too long" // another reason: a group of its own
	failed, _ := f.invoke(t, ev, 10*time.Second)
	if len(failed) != 1200 {
		t.Fatalf("%d failed, want 1200", len(failed))
	}
	seen := map[string]int{}
	lines := 0
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"record failed"`) {
			t.Fatalf("a line per record: %s", line)
		}
		if !strings.Contains(line, `"msg":"records failed"`) {
			continue
		}
		lines++
		var l struct {
			Reason     string
			Count      int
			MessageIDs []string
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Count != len(l.MessageIDs) || l.Count > 500 {
			t.Fatalf("bad grouped line (%v): %s", err, line[:min(len(line), 300)])
		}
		for _, id := range l.MessageIDs {
			seen[id]++
		}
		if l.Reason == "oversized" && (l.Count != 1 || l.MessageIDs[0] != "m-00003") {
			t.Errorf("oversized group %+v, want m-00003 alone", l)
		}
	}
	if lines != 4 { // 1,199 brokers_down in three lines, one oversized
		t.Errorf("%d grouped lines, want 4", lines)
	}
	for _, r := range ev.Records {
		if seen[r.MessageId] != 1 {
			t.Errorf("%s logged %d times", r.MessageId, seen[r.MessageId])
		}
	}
}

// TestWarmProducesAndLogsNothing checks that init's warm-up leaves no
// trace: nothing in Kafka, no log line of the relay's own, and the next
// batch relayed as usual, for each body format.
func TestWarmProducesAndLogsNothing(t *testing.T) {
	for _, format := range []string{"raw", "sns", "eventbridge"} {
		t.Run(format, func(t *testing.T) {
			c := startBroker(t, 1, []string{"events"})
			f := newRelay(t, map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_BODY_FORMAT": format})
			f.h.Warm()
			for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
				if line != "" && !strings.Contains(line, `"msg":"librdkafka"`) {
					t.Errorf("Warm logged %s", line)
				}
			}
			if n := c.Count("events"); n != 0 {
				t.Errorf("Warm produced %d records", n)
			}
			body := "{}"
			switch format {
			case "sns":
				body = `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:eu-west-1:123456789012:t","Message":"{}","Timestamp":"2026-12-02T00:00:00Z"}`
			case "eventbridge":
				body = `{"version":"0","id":"e","detail-type":"d","source":"s","account":"123456789012","time":"2026-12-02T00:00:00Z","region":"eu-west-1","resources":[],"detail":{}}`
			}
			ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m-1", Body: body, EventSourceARN: queueARN}}}
			if failed, _ := f.invoke(t, ev, 10*time.Second); len(failed) != 0 {
				t.Fatalf("the batch after Warm failed: %v", failed)
			}
			if n := c.Count("events"); n != 1 {
				t.Errorf("%d records in Kafka after one relayed, want 1", n)
			}
		})
	}
}
