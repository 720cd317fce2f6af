package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqs-msk-relay/relay/integration/sqsemu"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/sqs"
)

// TestDLQTool peeks at, redrives and replays a DLQ on the local SQS.
func TestDLQTool(t *testing.T) {
	s, _ := startStack(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := s.CreateQueue(ctx, "orders", false, 30*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	c := s.SQS.Client()
	dlq := Queue{URL: q.DLQURL, ARN: q.DLQARN}
	sendDLQ := func(prefix string, n int) []string {
		t.Helper()
		if _, err := s.Send(ctx, dlq, prefix, n, func(i int) Message {
			return Message{Body: "poison " + prefix, Attrs: map[string]string{"kind": "order"}}
		}); err != nil {
			t.Fatal(err)
		}
		msgs, err := sqs.Peek(ctx, c, q.DLQURL, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range msgs {
			if m.Body == "poison "+prefix {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}

	// Peek shows the messages, with attributes and receive counts, and
	// leaves them in the queue.
	ids := sendDLQ("a", 3)
	for range 2 {
		msgs, err := sqs.Peek(ctx, c, q.DLQURL, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 3 || msgs[0].Attributes["kind"] != "order" || msgs[0].ReceiveCount < 1 || msgs[0].SentAt.IsZero() {
			t.Fatalf("peek: %+v", msgs)
		}
	}
	if got := sqs.FailureQuery(ids[0]); !strings.Contains(got, `messageId = "`+ids[0]+`"`) {
		t.Errorf("failure query %q does not name the message", got)
	}

	// Redrive moves them back to the source queue.
	h, err := sqs.StartRedrive(ctx, c, q.DLQARN, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tasks, err := sqs.Redrives(ctx, c, q.DLQARN)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) == 0 || tasks[0].Handle != h {
			t.Fatalf("tasks %+v", tasks)
		}
		if tasks[0].Status == "COMPLETED" && tasks[0].Moved == 3 {
			break
		}
		if tasks[0].Status != "RUNNING" || time.Now().After(deadline) {
			t.Fatalf("redrive: %+v", tasks[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := s.Depth(ctx, q.URL); n != 3 {
		t.Errorf("%d messages back in the source queue, want 3", n)
	}
	if n, _ := s.Depth(ctx, q.DLQURL); n != 0 {
		t.Errorf("%d messages left in the DLQ, want 0", n)
	}
	if _, err := sqs.CancelRedrive(ctx, c, "no-such-task"); err == nil {
		t.Errorf("cancelling an unknown task succeeded")
	}

	// Replay sends selected DLQ messages straight to Kafka through the
	// relay and deletes only those.
	ids = sendDLQ("b", 3)
	handler := replayHandler(t, s)
	res, err := sqs.Replay(ctx, c, q.DLQURL, q.ARN, sqsemu.Region, []string{ids[1], "missing-id"}, handler, sqs.ReplayOptions{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replayed) != 1 || res.Replayed[0] != ids[1] || len(res.Missing) != 1 || len(res.Failed) != 0 {
		t.Fatalf("replay %+v", res)
	}
	if n := s.Kafka.Count("events"); n != 1 {
		t.Errorf("%d records in Kafka, want the replayed one", n)
	}
	if n, _ := s.Depth(ctx, q.DLQURL); n != 2 {
		t.Errorf("%d messages in the DLQ, want the 2 not replayed", n)
	}
	// The others are visible again right away.
	out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &q.DLQURL, MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil || len(out.Messages) != 2 {
		t.Errorf("after replay, %d visible in the DLQ (%v), want 2", len(out.Messages), err)
	}
}

// TestDLQReplayReadsThrough: replay long-polls the DLQ until it has read it
// through, so a message behind many others is found, and a message read
// twice (its visibility ran out during the read) is deleted with its
// newest receipt handle, so it does not stay in the DLQ as "replayed".
func TestDLQReplayReadsThrough(t *testing.T) {
	s, _ := startStack(t, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := s.CreateQueue(ctx, "reads", false, 30*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	c := s.SQS.Client()
	dlq := Queue{URL: q.DLQURL, ARN: q.DLQARN}
	if _, err := s.Send(ctx, dlq, "r", 25, func(i int) Message { return Message{Body: fmt.Sprint("poison ", i)} }); err != nil {
		t.Fatal(err)
	}
	all, err := sqs.Peek(ctx, c, q.DLQURL, 100)
	if err != nil || len(all) != 25 {
		t.Fatalf("peek: %d messages, %v", len(all), err)
	}
	handler := replayHandler(t, s)
	picked := []string{all[0].ID, all[24].ID}
	// A visibility of 1 s runs out during the read: the DLQ's messages are
	// received again, with new receipt handles.
	res, err := sqs.Replay(ctx, c, q.DLQURL, q.ARN, sqsemu.Region, append(picked, "missing-id"), handler,
		sqs.ReplayOptions{Wait: time.Second, Visibility: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Each picked message is replayed (and gone from the DLQ) or said to
	// have expired (and still there); never "replayed" and still there.
	if len(res.Replayed)+len(res.Expired) != 2 || len(res.Missing) != 1 || res.Missing[0] != "missing-id" || len(res.Failed) != 0 {
		t.Fatalf("replay %+v, want both picked replayed or expired, and only missing-id missing", res)
	}
	inDLQ := func() map[string]bool {
		t.Helper()
		left, err := sqs.Peek(ctx, c, q.DLQURL, 100)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, m := range left {
			ids[m.ID] = true
		}
		return ids
	}
	left := inDLQ()
	for _, id := range res.Replayed {
		if left[id] {
			t.Errorf("replayed message %s is still in the DLQ", id)
		}
	}
	for _, id := range res.Expired {
		if !left[id] {
			t.Errorf("expired message %s is not in the DLQ", id)
		}
	}
	// With the default visibility, a second run replays what is left.
	res, err = sqs.Replay(ctx, c, q.DLQURL, q.ARN, sqsemu.Region, res.Expired, handler, sqs.ReplayOptions{Wait: time.Second})
	if err != nil || len(res.Expired) != 0 || len(res.Failed) != 0 || len(res.Missing) != 0 {
		t.Fatalf("second replay %+v, %v", res, err)
	}
	left = inDLQ()
	if left[picked[0]] || left[picked[1]] || len(left) != 23 {
		t.Errorf("%d messages left in the DLQ (picked still there: %v %v), want 23 without the picked", len(left), left[picked[0]], left[picked[1]])
	}
}

// replayHandler is the relay on the stack's broker, as relay-dlq replay
// builds it.
func replayHandler(t *testing.T, s *Stack) *relay.Handler {
	t.Helper()
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"RELAY_BROKERS": s.Kafka.Addrs(), "RELAY_TOPIC": "events", "RELAY_AUTH": "none"}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := kafka.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return relay.NewHandler(cfg, p, log)
}
