package sqsemu

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatal("no go.mod above the working directory")
		}
	}
}

// TestFIFOReceiveTakesTheGroup: one receive of up to 10 from a FIFO queue
// holding 10 messages of one group returns all 10, in order, as SQS does;
// when their visibility runs out they come back in the same order, and
// the group stays locked while any of them is in flight.
func TestFIFOReceiveTakesTheGroup(t *testing.T) {
	e, err := Start(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := e.Client()
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("g.fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(strconv.Itoa(i)),
			MessageGroupId: aws.String("g")}); err != nil {
			t.Fatal(err)
		}
	}
	receive := func() []types.Message {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	inOrder := func(msgs []types.Message) bool {
		for i, m := range msgs {
			if aws.ToString(m.Body) != strconv.Itoa(i) {
				return false
			}
		}
		return len(msgs) == 10
	}
	first := receive()
	if !inOrder(first) {
		t.Fatalf("first receive: %d messages %v, want 0..9 in order", len(first), bodies(first))
	}
	// The first two are handled at once: only the other eight come back.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q.QueueUrl,
		ReceiptHandle: first[9].ReceiptHandle, VisibilityTimeout: 3}); err != nil {
		t.Fatal(err)
	}
	for _, m := range first[:2] {
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	// Messages 2..8 become visible after 1 s, 9 after 3 s: until then the
	// group is locked.
	deadline := time.Now().Add(20 * time.Second)
	var again []types.Message
	for len(again) == 0 && time.Now().Before(deadline) {
		again = receive()
		if len(again) > 0 && len(again) != 8 {
			t.Fatalf("received %v while message 9 was in flight: the group must stay locked", bodies(again))
		}
	}
	want := []string{"2", "3", "4", "5", "6", "7", "8", "9"}
	if got := bodies(again); len(got) != len(want) || got[0] != want[0] || got[7] != want[7] {
		t.Fatalf("after the visibility ran out: %v, want %v", got, want)
	}
	for i, m := range again {
		if aws.ToString(m.Body) != want[i] {
			t.Fatalf("after the visibility ran out: %v, want %v", bodies(again), want)
		}
	}
}

func bodies(msgs []types.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, aws.ToString(m.Body))
	}
	return out
}
