// Package esm is an event source mapping for SQS that behaves like AWS's:
// it long-polls a queue for batches up to a size or a batching window,
// invokes the function, deletes the records not listed in
// batchItemFailures, and leaves the rest to reappear after the visibility
// timeout. A function error, a timeout or an invalid response fails the
// whole batch, as AWS treats them.
package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqs-msk-relay/relay/integration/runtimeapi"
	relaysqs "github.com/sqs-msk-relay/relay/relay/sqs"
)

// Mapping polls one queue for one function.
type Mapping struct {
	SQS       *sqs.Client
	QueueURL  string
	QueueARN  string
	Region    string
	BatchSize int           // records per invocation, at most; default 10
	Window    time.Duration // how long to gather a batch; default 0 (one receive)
	// Invoke runs the function on an event and returns its answer; an
	// error means it timed out or crashed.
	Invoke func(ctx context.Context, payload []byte) (runtimeapi.Result, error)

	mu    sync.Mutex
	stats Stats
}

// Stats counts what the mapping did.
type Stats struct {
	Invocations    int
	Records        int
	Deleted        int
	ReportedFailed int // records the function listed in batchItemFailures
	BatchFailures  int // invocations failed whole: function error, timeout, bad response
}

// Stats returns a copy of the counters.
func (m *Mapping) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run polls and invokes until ctx is done.
func (m *Mapping) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if _, err := m.Poll(ctx); err != nil && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond) // an SQS error: back off a little
		}
	}
}

// Poll gathers one batch and, if it is not empty, invokes the function
// with it and settles the records. It returns the batch size.
func (m *Mapping) Poll(ctx context.Context) (int, error) {
	size := m.BatchSize
	if size <= 0 {
		size = 10
	}
	var msgs []types.Message
	end := time.Now().Add(m.Window)
	for len(msgs) < size {
		wait := int32(1)
		if len(msgs) > 0 {
			wait = 0
		}
		out, err := m.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &m.QueueURL,
			MaxNumberOfMessages:         int32(min(10, size-len(msgs))),
			WaitTimeSeconds:             wait,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return 0, fmt.Errorf("receive: %w", err)
		}
		msgs = append(msgs, out.Messages...)
		if len(out.Messages) == 0 && len(msgs) > 0 || time.Now().After(end) && len(msgs) > 0 {
			break
		}
		if len(out.Messages) == 0 && len(msgs) == 0 {
			return 0, nil
		}
	}
	return len(msgs), m.invoke(ctx, msgs)
}

func (m *Mapping) invoke(ctx context.Context, msgs []types.Message) error {
	payload, err := json.Marshal(relaysqs.Event(msgs, m.QueueARN, m.Region))
	if err != nil {
		return err
	}
	res, err := m.Invoke(ctx, payload)
	m.mu.Lock()
	m.stats.Invocations++
	m.stats.Records += len(msgs)
	m.mu.Unlock()
	failed, ferr := failures(res, err, msgs)
	if ferr != nil {
		// The whole batch comes back after the visibility timeout.
		m.mu.Lock()
		m.stats.BatchFailures++
		m.mu.Unlock()
		return nil
	}
	var done []types.DeleteMessageBatchRequestEntry
	for i, msg := range msgs {
		if !failed[*msg.MessageId] {
			done = append(done, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle})
		}
	}
	for len(done) > 0 {
		n := min(10, len(done))
		out, err := m.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &m.QueueURL, Entries: done[:n]})
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		m.mu.Lock()
		m.stats.Deleted += len(out.Successful)
		m.mu.Unlock()
		done = done[n:]
	}
	m.mu.Lock()
	m.stats.ReportedFailed += len(failed)
	m.mu.Unlock()
	return nil
}

// failures reads the function's answer as AWS does: any error, invalid
// JSON, or an empty or unknown identifier fails the whole batch.
func failures(res runtimeapi.Result, err error, msgs []types.Message) (map[string]bool, error) {
	if err != nil {
		return nil, err
	}
	if res.Error {
		return nil, errors.New("function error")
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(res.Payload, &resp); err != nil {
		return nil, fmt.Errorf("invalid response: %w", err)
	}
	ids := map[string]bool{}
	for _, msg := range msgs {
		ids[*msg.MessageId] = true
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == "" || !ids[f.ItemIdentifier] {
			return nil, fmt.Errorf("invalid itemIdentifier %q", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, nil
}
