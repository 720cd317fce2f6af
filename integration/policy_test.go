package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	relaysqs "github.com/sqs-msk-relay/relay/relay/sqs"
)

// startPolicyStack starts the stack with a queue made before the
// function, whose DLQ the function is given as RELAY_DLQ_URL when dlq.
func startPolicyStack(t *testing.T, name string, fifo bool, visibility time.Duration, maxReceive int, dlq bool, env ...string) (*Stack, *logBuffer, Queue) {
	t.Helper()
	var q Queue
	s, logs := startStackWith(t, StackConfig{FunctionTimeout: 2 * time.Second, FunctionEnv: env, Prepare: func(s *Stack) ([]string, error) {
		var err error
		if q, err = s.CreateQueue(context.Background(), name, fifo, visibility, maxReceive); err != nil || !dlq {
			return nil, err
		}
		return []string{"RELAY_DLQ_URL=" + q.DLQURL}, nil
	}})
	return s, logs, q
}

// receiveAll reads every message of the queue at url with its attributes
// and makes them visible again.
func receiveAll(t *testing.T, s *Stack, url string) []types.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.SQS.Client()
	var msgs []types.Message
	for range 100 {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 30,
			MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		msgs = append(msgs, out.Messages...)
	}
	for _, m := range msgs {
		if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

// TestPolicyPoisonDeadLetteredOnFirstReceive: with RELAY_DLQ_URL, records
// that can never succeed reach the DLQ on their first receive with their
// reason, and on a FIFO queue the later records of their group land in
// order in the same batch: no record is ever reported failed, so none is
// received twice.
func TestPolicyPoisonDeadLetteredOnFirstReceive(t *testing.T) {
	for _, fifo := range []bool{false, true} {
		t.Run(map[bool]string{false: "standard", true: "fifo"}[fifo], func(t *testing.T) {
			s, logs, q := startPolicyStack(t, "orders", fifo, 5*time.Second, 5, true,
				"RELAY_MAX_MESSAGE_BYTES=1000", "RELAY_TOPIC_ATTRIBUTE=route", "RELAY_ALLOWED_TOPICS=audit", "RELAY_RETRY_BASE=1s")
			ctx := context.Background()
			poison := map[int]string{5: "oversized", 13: "topic_not_allowed", 22: "oversized"}
			group := func(i int) string { return fmt.Sprintf("g-%d", i%3) }
			sent, err := s.Send(ctx, q, "p", 60, func(i int) Message {
				m := Message{Body: "ok " + strconv.Itoa(i)}
				if fifo {
					m.Group = group(i)
				}
				switch poison[i] {
				case "oversized":
					m.Body = strings.Repeat("x", 1001)
				case "topic_not_allowed":
					m.Attrs = map[string]string{"route": "payroll"}
				}
				return m
			})
			if err != nil {
				t.Fatal(err)
			}
			r, st := relayThrough(t, s, q, 10, time.Minute, []string{"events", "audit"}, sent)
			if len(r.Lost) != 0 || r.InKafka != 57 || r.InDLQ != 3 {
				t.Errorf("%v, want 57 in Kafka, 3 in the DLQ, none lost", r)
			}
			for i, trace := range sent {
				if r.DLQ[trace] != (poison[i] != "") {
					t.Errorf("%s (poison %q) in the DLQ: %v", trace, poison[i], r.DLQ[trace])
				}
			}
			if st.ReportedFailed != 0 {
				t.Errorf("%d records reported failed: a poison record, or one behind it, was received again", st.ReportedFailed)
			}
			if fifo {
				checkFIFOOrder(t, r, sent, group)
				if !logsSay(logs, `"record dead-lettered"`) {
					t.Error("no record dead-lettered line")
				}
			}
			for _, msg := range receiveAll(t, s, q.DLQURL) {
				trace := aws.ToString(msg.MessageAttributes[TraceAttribute].StringValue)
				i, _ := strconv.Atoi(trace[strings.LastIndex(trace, "-")+1:])
				reason := aws.ToString(msg.MessageAttributes[relaysqs.AttrFailureReason].StringValue)
				if reason != poison[i] || msg.MessageAttributes[relaysqs.AttrSourceID].StringValue == nil ||
					!strings.Contains(aws.ToString(msg.MessageAttributes[relaysqs.AttrFailureError].StringValue), "record ") {
					t.Errorf("%s in the DLQ with attributes %v, want reason %q, its error and its source messageId", trace, attrNames(msg), poison[i])
				}
				if fifo && msg.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)] != group(i) {
					t.Errorf("%s in the DLQ in group %q, want %q", trace, msg.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)], group(i))
				}
				if !fifo && (poison[i] == "oversized") != (len(aws.ToString(msg.Body)) == 1001) {
					t.Errorf("%s in the DLQ with a body of %d bytes", trace, len(aws.ToString(msg.Body)))
				}
			}
		})
	}
}

func attrNames(m types.Message) []string {
	var names []string
	for k, v := range m.MessageAttributes {
		names = append(names, k+"="+aws.ToString(v.StringValue))
	}
	return names
}

// TestPolicyOutageBacksOff: an outage longer than maxReceiveCount × the
// queue's visibility timeout moves every record to the DLQ without the
// backoff, and none with it: all land in Kafka once the broker is back.
func TestPolicyOutageBacksOff(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     []string
		wantDLQ bool
	}{
		// Receives at about 0, 3 and 6 s, each failed at the 2 s deadline:
		// in the DLQ from about 9 s, before the 12 s outage ends.
		{"without backoff", []string{"RELAY_RETRY_BASE=0"}, true},
		// A delay of 2–2.5 s after the first receive, 10 s (Max) after
		// the second: the third, the last, comes after the outage.
		{"with backoff", []string{"RELAY_RETRY_BASE=2s", "RELAY_RETRY_MAX=10s"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, logs, q := startPolicyStack(t, "outage", false, 3*time.Second, 3, true, tt.env...)
			ctx := context.Background()
			end := time.Now().Add(12 * time.Second)
			stallProduce(s, end)
			// One batch: with more, a batch waiting for the function would
			// outlive its visibility and be received again meanwhile.
			sent, err := s.Send(ctx, q, "o", 10, func(i int) Message { return Message{Body: strconv.Itoa(i)} })
			if err != nil {
				t.Fatal(err)
			}
			r, st := relayThrough(t, s, q, 10, 90*time.Second, []string{"events"}, sent)
			if st.ReportedFailed == 0 || !tt.wantDLQ && time.Now().Before(end) {
				t.Fatalf("the outage failed no record (%v): nothing was tested", st)
			}
			if len(r.Lost) != 0 {
				t.Errorf("%v: lost %v", r, r.Lost)
			}
			if tt.wantDLQ && r.InDLQ == 0 {
				t.Errorf("%v: without backoff the outage should have moved records to the DLQ", r)
			}
			if !tt.wantDLQ {
				if r.InDLQ != 0 || r.InKafka != len(sent) {
					t.Errorf("%v, want all %d in Kafka and the DLQ empty", r, len(sent))
				}
				if !logsSay(logs, `"backedOff"`) {
					t.Error("no batch summary counts records backed off")
				}
			}
		})
	}
}

// TestPolicySQSUnreachable: with no path from the function to the SQS API,
// a poison record is reported failed as without the policy, and reaches
// the DLQ by the queue's redrive; on a FIFO queue the later records of its
// group are failed with it, to keep their order. The relay says so once.
func TestPolicySQSUnreachable(t *testing.T) {
	for _, fifo := range []bool{false, true} {
		t.Run(map[bool]string{false: "standard", true: "fifo"}[fifo], func(t *testing.T) {
			s, logs, q := startPolicyStack(t, "nosqs", fifo, 2*time.Second, 2, true,
				"RELAY_MAX_MESSAGE_BYTES=1000", "RELAY_RETRY_BASE=1s", "AWS_ENDPOINT_URL_SQS=http://127.0.0.1:1")
			ctx := context.Background()
			group := func(i int) string { return fmt.Sprintf("g-%d", i%2) }
			sent, err := s.Send(ctx, q, "u", 30, func(i int) Message {
				m := Message{Body: strconv.Itoa(i)}
				if i%10 == 3 {
					m.Body = strings.Repeat("x", 1001)
				}
				if fifo {
					m.Group = group(i)
				}
				return m
			})
			if err != nil {
				t.Fatal(err)
			}
			r, st := relayThrough(t, s, q, 10, time.Minute, []string{"events"}, sent)
			// On a FIFO queue the records failed behind a poison record are
			// received as often as it is, and may reach the DLQ with it, as
			// without the policy: that is what dead-lettering it avoids.
			if len(r.Lost) != 0 || r.InKafka != 27 || r.InDLQ < 3 || !fifo && r.InDLQ != 3 {
				t.Errorf("%v, want 27 in Kafka, the 3 poison records in the DLQ, none lost", r)
			}
			for i, trace := range sent {
				if i%10 == 3 && !r.DLQ[trace] {
					t.Errorf("poison record %s not in the DLQ", trace)
				}
			}
			if st.ReportedFailed < 6 {
				t.Errorf("%d records reported failed, want at least the 3 poison ones on each of their 2 receives", st.ReportedFailed)
			}
			if fifo {
				checkFIFOOrder(t, r, sent, group)
				if !logsSay(logs, `"group_blocked"`) {
					t.Error("no record failed behind its group's poison record")
				}
			}
			if n := strings.Count(logs.String(), "through the SQS API"); n != 1 {
				t.Errorf("%d lines about the SQS API, want 1 per sandbox", n)
			}
		})
	}
}
