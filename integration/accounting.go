package integration

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TraceAttribute is the message attribute the stack's senders put on every
// message. It keys the accounting: unlike the SQS message id it survives a
// DLQ redrive (which sends a new message), and the relay carries it into
// Kafka as a header.
const TraceAttribute = "trace-id"

// Message is one message to send.
type Message struct {
	Body  string
	Group string            // FIFO message group
	Attrs map[string]string // String attributes besides the trace id
}

// Send sends n messages made by gen to q, ten per SendMessageBatch, and
// returns their trace ids in send order.
func (s *Stack) Send(ctx context.Context, q Queue, prefix string, n int, gen func(i int) Message) ([]string, error) {
	c := s.SQS.Client()
	traces := make([]string, 0, n)
	for start := 0; start < n; start += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for i := start; i < min(n, start+10); i++ {
			m := gen(i)
			trace := fmt.Sprintf("%s-%06d", prefix, i)
			attrs := map[string]types.MessageAttributeValue{TraceAttribute: {DataType: aws.String("String"), StringValue: aws.String(trace)}}
			for k, v := range m.Attrs {
				attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
			}
			e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(m.Body), MessageAttributes: attrs}
			if q.FIFO {
				e.MessageGroupId = aws.String(m.Group)
				e.MessageDeduplicationId = aws.String(trace)
			}
			entries = append(entries, e)
			traces = append(traces, trace)
		}
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.URL, Entries: entries})
		if err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		if len(out.Failed) > 0 {
			return nil, fmt.Errorf("send: %d failed: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
	return traces, nil
}

// Depth is the number of messages in a queue, visible or in flight.
func (s *Stack) Depth(ctx context.Context, url string) (int, error) {
	a, err := s.SQS.Client().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, err
	}
	v, _ := strconv.Atoi(a.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	nv, _ := strconv.Atoi(a.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return v + nv, nil
}

// Drain runs the mappings until every queue is empty (nothing visible,
// nothing in flight), or timeout passes.
func (s *Stack) Drain(ctx context.Context, timeout time.Duration, queues []Queue, run func(ctx context.Context)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan struct{})
	go func() { run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("queues not drained within %v", timeout)
		case <-tick.C:
		}
		empty := true
		for _, q := range queues {
			n, err := s.Depth(ctx, q.URL)
			if err != nil {
				return err
			}
			empty = empty && n == 0
		}
		if empty {
			return nil
		}
	}
}

// Report accounts for every message sent: in Kafka at least once, or in
// the DLQ. Lost must be empty.
type Report struct {
	Sent       int
	InKafka    int      // distinct trace ids in Kafka
	InDLQ      int      // distinct trace ids in the DLQ
	Duplicates int      // Kafka records beyond the first per trace id
	Lost       []string // sent, and in neither
	DLQ        map[string]bool
	// Order is, per trace id, the position of its first record within its
	// partition, for FIFO order checks: traces[key] = offsets in order.
	Kafka map[string][]*kgo.Record
}

func (r Report) String() string {
	return fmt.Sprintf("sent %d, in Kafka %d, in DLQ %d, duplicates %d, lost %d", r.Sent, r.InKafka, r.InDLQ, r.Duplicates, len(r.Lost))
}

// Account reads the topics and the DLQ and checks them against sent.
func (s *Stack) Account(ctx context.Context, topics []string, q Queue, sent []string) (Report, error) {
	r := Report{Sent: len(sent), DLQ: map[string]bool{}, Kafka: map[string][]*kgo.Record{}}
	for _, t := range topics {
		recs, err := s.readTopic(ctx, t)
		if err != nil {
			return r, err
		}
		for _, rec := range recs {
			for _, h := range rec.Headers {
				if h.Key == TraceAttribute {
					r.Kafka[string(h.Value)] = append(r.Kafka[string(h.Value)], rec)
				}
			}
		}
	}
	dlq, err := s.peekAll(ctx, q.DLQURL)
	if err != nil {
		return r, err
	}
	for _, t := range dlq {
		r.DLQ[t] = true
	}
	for _, t := range sent {
		recs := r.Kafka[t]
		if len(recs) > 0 {
			r.InKafka++
			r.Duplicates += len(recs) - 1
		}
		if r.DLQ[t] {
			r.InDLQ++
		}
		if len(recs) == 0 && !r.DLQ[t] {
			r.Lost = append(r.Lost, t)
		}
	}
	sort.Strings(r.Lost)
	return r, nil
}

// peekAll reads the trace ids of every message in a queue and makes them
// visible again.
func (s *Stack) peekAll(ctx context.Context, url string) ([]string, error) {
	c := s.SQS.Client()
	var traces []string
	var handles []types.ChangeMessageVisibilityBatchRequestEntry
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 30,
			MessageAttributeNames: []string{TraceAttribute}})
		if err != nil {
			return nil, err
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if a, ok := m.MessageAttributes[TraceAttribute]; ok {
				traces = append(traces, aws.ToString(a.StringValue))
			}
			handles = append(handles, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(len(handles))), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		}
	}
	for len(handles) > 0 {
		n := min(10, len(handles))
		if _, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: handles[:n]}); err != nil {
			return nil, err
		}
		handles = handles[n:]
	}
	return traces, nil
}
