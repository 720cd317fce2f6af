// Package sqs holds the relay's SQS operations: the function's own after a
// batch (Queue: dead-lettering and backing off failed records), and the
// operators' tools' (peeking at a dead-letter queue, redriving it with
// SQS's message-move tasks, and turning received messages into the event
// Lambda would deliver, so that selected messages can be replayed through
// the relay's own mapping).
package sqs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Message is a message in a queue as an operator sees it.
type Message struct {
	ID           string
	Body         string
	ReceiveCount int
	SentAt       time.Time
	GroupID      string
	Attributes   map[string]string // message attributes; Binary ones base64
	raw          types.Message
}

// FailureQuery is the CloudWatch Logs Insights query that finds why the
// relay last failed a message: its "record failed" lines carry the
// messageId, which SQS keeps when it moves a message to the DLQ, and a
// batch with many failures lists the ids in "records failed" lines. A
// record the relay dead-lettered itself has a new messageId in the DLQ:
// its relay.source.messageId attribute is the one to query.
func FailureQuery(messageID string) string {
	return fmt.Sprintf(`fields @timestamp, reason, error | filter (msg in ["record failed", "record dead-lettered"] and messageId = %q) or (msg in ["records failed", "records dead-lettered"] and @message like %q) | sort @timestamp desc | limit 1`, messageID, messageID)
}

// Peek reads up to max messages and makes them visible again at once, so
// looking does not delay a redrive or count as a receive for long.
func Peek(ctx context.Context, c *awssqs.Client, url string, max int) ([]Message, error) {
	msgs, err := receive(ctx, c, url, receiveOptions{max: max})
	if err != nil {
		return nil, err
	}
	if err := release(ctx, c, url, msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// Receive defaults: long polls, so that a queue whose messages are spread
// over SQS's servers is not taken for empty after one short receive, and a
// visibility long enough for a replay to finish with its messages.
const (
	defaultWait       = 2 * time.Second
	defaultVisibility = 2 * time.Minute
)

// receiveOptions bound a receive loop.
type receiveOptions struct {
	max        int                  // messages at most
	wait       time.Duration        // long-poll wait per receive; default defaultWait
	visibility time.Duration        // default defaultVisibility
	enough     func(id string) bool // if set, stop once it is true for every id wanted (see Replay)
	wanted     int                  // how many ids enough waits for
}

// receive reads messages until max, an empty long poll, the wanted ones,
// or a receive that brings only messages already read (their visibility
// ran out: the queue has been read through). A message read twice keeps
// its newest receipt handle: SQS accepts a delete with an older one
// without deleting.
func receive(ctx context.Context, c *awssqs.Client, url string, o receiveOptions) ([]Message, error) {
	if o.wait <= 0 {
		o.wait = defaultWait
	}
	if o.visibility <= 0 {
		o.visibility = defaultVisibility
	}
	var out []Message
	at := map[string]int{}
	found := 0
	for len(out) < o.max {
		r, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: int32(min(10, o.max-len(out))),
			VisibilityTimeout: int32(o.visibility.Seconds()), WaitTimeSeconds: int32(max(1, o.wait.Seconds())),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return out, fmt.Errorf("receive from %s: %w", url, err)
		}
		if len(r.Messages) == 0 {
			break
		}
		fresh := 0
		for _, m := range r.Messages {
			msg := fromSQS(m)
			if k, ok := at[msg.ID]; ok {
				out[k] = msg // the newest receipt handle
				continue
			}
			at[msg.ID] = len(out)
			out = append(out, msg)
			fresh++
			if o.enough != nil && o.enough(msg.ID) {
				found++
			}
		}
		if fresh == 0 || o.enough != nil && found >= o.wanted {
			break
		}
	}
	return out, nil
}

// release makes msgs visible again at once.
func release(ctx context.Context, c *awssqs.Client, url string, msgs []Message) error {
	if _, err := hold(ctx, c, url, msgs, 0); err != nil {
		return fmt.Errorf("make messages visible again: %w", err)
	}
	return nil
}

// hold sets msgs' visibility timeout to d from now, and returns the ids of
// those SQS refused: their visibility had run out, so their receipt handle
// no longer deletes them.
func hold(ctx context.Context, c *awssqs.Client, url string, msgs []Message, d time.Duration) (refused []string, err error) {
	for start := 0; start < len(msgs); start += 10 {
		batch := msgs[start:min(len(msgs), start+10)]
		var entries []types.ChangeMessageVisibilityBatchRequestEntry
		for i, m := range batch {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
				ReceiptHandle: m.raw.ReceiptHandle, VisibilityTimeout: int32(d.Seconds())})
		}
		out, err := c.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			return refused, err
		}
		for _, f := range out.Failed {
			if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i < len(batch) {
				refused = append(refused, batch[i].ID)
			}
		}
	}
	return refused, nil
}

func fromSQS(m types.Message) Message {
	msg := Message{ID: aws.ToString(m.MessageId), Body: aws.ToString(m.Body), Attributes: map[string]string{}, raw: m}
	msg.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		msg.SentAt = time.UnixMilli(ms)
	}
	msg.GroupID = m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
	for k, v := range m.MessageAttributes {
		if v.StringValue != nil {
			msg.Attributes[k] = *v.StringValue
		} else {
			msg.Attributes[k] = fmt.Sprintf("(binary, %d bytes)", len(v.BinaryValue))
		}
	}
	return msg
}

// QueueARN is the ARN of the queue at url.
func QueueARN(ctx context.Context, c *awssqs.Client, url string) (string, error) {
	a, err := c.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("queue attributes of %s: %w", url, err)
	}
	return a.Attributes[string(types.QueueAttributeNameQueueArn)], nil
}

// StartRedrive starts a message-move task from the DLQ dlqARN back to the
// queues its messages came from (or to destARN), at most rate messages a
// second (SQS allows 1-500; 0 lets SQS choose).
func StartRedrive(ctx context.Context, c *awssqs.Client, dlqARN, destARN string, rate int) (string, error) {
	in := &awssqs.StartMessageMoveTaskInput{SourceArn: &dlqARN}
	if destARN != "" {
		in.DestinationArn = &destARN
	}
	if rate > 0 {
		in.MaxNumberOfMessagesPerSecond = aws.Int32(int32(rate))
	}
	out, err := c.StartMessageMoveTask(ctx, in)
	if err != nil {
		return "", fmt.Errorf("start redrive of %s: %w", dlqARN, err)
	}
	return aws.ToString(out.TaskHandle), nil
}

// Task is a message-move task's state.
type Task struct {
	Handle, Status, Failure string
	Moved, ToMove           int64
}

// Redrives lists the recent message-move tasks of the DLQ, newest first.
func Redrives(ctx context.Context, c *awssqs.Client, dlqARN string) ([]Task, error) {
	out, err := c.ListMessageMoveTasks(ctx, &awssqs.ListMessageMoveTasksInput{SourceArn: &dlqARN})
	if err != nil {
		return nil, fmt.Errorf("list redrives of %s: %w", dlqARN, err)
	}
	var tasks []Task
	for _, r := range out.Results {
		tasks = append(tasks, Task{Handle: aws.ToString(r.TaskHandle), Status: aws.ToString(r.Status), Failure: aws.ToString(r.FailureReason),
			Moved: r.ApproximateNumberOfMessagesMoved, ToMove: aws.ToInt64(r.ApproximateNumberOfMessagesToMove)})
	}
	return tasks, nil
}

// CancelRedrive stops a running task and returns how many it moved.
func CancelRedrive(ctx context.Context, c *awssqs.Client, handle string) (int64, error) {
	out, err := c.CancelMessageMoveTask(ctx, &awssqs.CancelMessageMoveTaskInput{TaskHandle: &handle})
	if err != nil {
		return 0, fmt.Errorf("cancel redrive %s: %w", handle, err)
	}
	return out.ApproximateNumberOfMessagesMoved, nil
}

// Event is the SQS event Lambda would deliver for msgs from queueARN.
func Event(msgs []types.Message, queueARN, region string) events.SQSEvent {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(msgs))}
	for i, m := range msgs {
		r := events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Md5OfBody: aws.ToString(m.MD5OfBody), Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes: map[string]string{}, MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSourceARN: queueARN, EventSource: "aws:sqs", AWSRegion: region,
		}
		for k, v := range m.Attributes {
			r.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			r.MessageAttributes[k] = events.SQSMessageAttribute{StringValue: v.StringValue, BinaryValue: v.BinaryValue,
				DataType: aws.ToString(v.DataType), StringListValues: []string{}, BinaryListValues: [][]byte{}}
		}
		ev.Records[i] = r
	}
	return ev
}
